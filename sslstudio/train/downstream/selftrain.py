"""Self-training: the whole network learns from the few labels and from every unlabelled image.

FixMatch (Sohn et al., 2020) on the pretrained backbone, started from label
propagation so that the first pseudo-labels are already good:

1. teacher: a class distribution for every image from the frozen, mirror-
   averaged features (`teacher_scores`), a blend of the labels propagated over
   their kNN graph (propagate.py), which follows the data's groups, and a
   linear probe on the labels alone, which holds where neighbours share a
   style rather than a class (letters in one typeface). Cross-validation on
   the labels picks the blend; the propagation's linear head starts the
   network's head;
2. each step takes a batch of unlabelled images and a class-balanced batch of
   labelled ones. The target for an unlabelled image blends the propagated
   distribution with the network's own current prediction on a *weak* view
   (mirror + small shift), rescaled so the classes come out balanced over the
   data (distribution alignment keeps one class from swallowing the rest);
   where the blended target is confident (≥ τ), it trains the prediction on a
   *strong* view (crop, colour jitter, cutout) of the same image;
3. the labelled images train on weak views, drawn class-balanced; backbone and
   head learn together (AdamW, cosine-decayed; by default at the same rate).

The blend moves from the teacher towards the network over training, so the
graph's view of the data steadies the start and the network's better features
take over later. The result is an ordinary backbone + linear head (mirror-
averaged at inference, like the feature methods), so export and predict are
unchanged. Cost: about three forward and two backward passes per unlabelled
image per epoch — minutes on a CPU for a few thousand small images.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sslstudio.train.device import mixed_precision
from sslstudio.train.downstream import propagate
from sslstudio.train.downstream.finetune import augment_batch
from sslstudio.train.downstream.inputs import CancelFn, ImageSet, ProgressFn, check_cancel
from sslstudio.train.downstream.model import ClassifierModel
from sslstudio.train.downstream.semi import strong_augment
from sslstudio.train.downstream.validation import balanced_class_weights


@dataclass
class SelfTrainSettings:
    epochs: float = 20.0         # passes over the unlabelled images (8 → 20: +0.4 points, digits, one seed)
    max_steps: int = 2000        # cap for large folders (a GPU gets there in a minute)
    min_steps: int = 60
    batch_size: int = 64         # unlabelled images per step
    labelled_batch: int = 32
    lr: float = 1e-3             # head (AdamW); the backbone trains at lr × backbone_lr_factor
    backbone_lr_factor: float = 1.0   # 0.3 → 1.0: +0.7 points on digits (one seed)
    weight_decay: float = 1e-4
    threshold: float = 0.7       # confidence τ of a pseudo-label after blending and alignment
    unlabelled_weight: float = 1.0
    teacher_start: float = 1.0   # share of the propagated distribution in the target at the start
    teacher_end: float = 0.3     # ... and at the end (the rest is the network's weak-view guess)
    probe_share: float | None = None   # share of the linear probe in the teacher, the rest
                                 # propagation; None: chosen by cross-validation on the labels
                                 # (docs/benchmarks-classifier.md, "The teacher")
    mirror: bool = True          # False: no mirrored views, no mirror averaging (b / d classes)
    precision: str = "auto"      # auto: the network runs in bf16 where the device has it
                                 # natively (about 2x faster on such CPUs); "float32"
    seed: int = 0


def steps_for(n_unlabelled: int, s: SelfTrainSettings) -> int:
    per_epoch = math.ceil(max(1, n_unlabelled) / s.batch_size)
    return int(min(s.max_steps, max(s.min_steps, round(s.epochs * per_epoch))))


def image_passes(n_unlabelled: int, s: SelfTrainSettings) -> int:
    """The work of one self_train call in single-image forward passes (a backward pass
    counts two): per step a weak and a strong forward of the unlabelled batch, one of the
    labelled batch, and backward passes through the strong and labelled ones."""
    return steps_for(n_unlabelled, s) * (4 * s.batch_size + 3 * s.labelled_batch)


# the probe shares cross-validation chooses from; 0.5 where there are too few labels to validate
PROBE_SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)
UNVALIDATED_PROBE_SHARE = 0.5


def teacher_scores(feats: np.ndarray, labelled: np.ndarray, y_idx: np.ndarray, n_classes: int,
                   probe_share: float | None = None,
                   propagation: propagate.PropagationSettings | None = None,
                   cancel: CancelFn | None = None, z: np.ndarray | None = None, seed: int = 0):
    """(propagation's linear head, N×K teacher distribution, probe share used).

    The teacher blends propagated scores with a linear probe's probabilities, `probe_share`
    of the latter; a given label stays one-hot. Neither view is best everywhere (MNIST:
    propagation 92% right on the unlabelled images, the probe 86%; letters from many
    typefaces: 46% and 61%), so by default the share is the one whose blend names the
    held-out labels best in cross-validation (ties: the lower log-loss).
    """
    from sslstudio.train.downstream.linear_probe import LinearProbe
    from sslstudio.train.downstream.validation import plan_validation

    s = propagation or propagate.PropagationSettings()
    z = propagate.embed(feats) if z is None else z
    graph = propagate.knn_graph(z, s.k, s.gamma, cancel=cancel)
    head, scores = propagate.fit_head(feats, labelled, y_idx, n_classes, s, cancel, z=z,
                                      graph=graph)

    def probe_probs(rows: np.ndarray, where: np.ndarray) -> np.ndarray:
        return LinearProbe(1.0, n_classes).fit(feats[labelled[rows]], y_idx[rows]) \
            .predict_proba(feats[where])

    if probe_share is None:
        folds = plan_validation(y_idx, seed=seed).folds
        probe_share = UNVALIDATED_PROBE_SHARE
        if folds:
            held_prop = np.zeros((len(y_idx), n_classes))
            held_probe = np.zeros((len(y_idx), n_classes))
            for train, val in folds:
                check_cancel(cancel)
                held_prop[val] = propagate.propagate(z, labelled[train], y_idx[train], n_classes,
                                                     s, cancel, graph=graph)[labelled[val]]
                held_probe[val] = probe_probs(train, labelled[val])
            rows = np.concatenate([val for _, val in folds])

            def score(share: float) -> tuple[float, float]:
                blend = (1 - share) * held_prop[rows] + share * held_probe[rows]
                right = float(np.mean(blend.argmax(1) == y_idx[rows]))
                return right, float(np.mean(np.log(np.clip(blend[np.arange(len(rows)),
                                                                  y_idx[rows]], 1e-6, 1))))

            probe_share = max(PROBE_SHARES, key=score)
    if probe_share <= 0:
        return head, scores, 0.0
    check_cancel(cancel)
    blended = (1 - probe_share) * scores + probe_share * probe_probs(
        np.arange(len(labelled)), np.arange(len(feats)))
    blended[labelled] = 0.0
    blended[labelled, y_idx] = 1.0
    return head, blended, float(probe_share)


def self_train(backbone: nn.Module, image_set: ImageSet, feats: np.ndarray,
               labelled: np.ndarray, y_idx: np.ndarray, n_classes: int,
               settings: SelfTrainSettings | None = None, *, device: str = "cpu",
               propagation: propagate.PropagationSettings | None = None,
               z: np.ndarray | None = None,
               progress: ProgressFn | None = None,
               cancel: CancelFn | None = None) -> tuple[ClassifierModel, dict]:
    """A copy of `backbone` with a linear head, trained on the labels and the unlabelled images.

    feats: frozen features of every image for the teacher (mirror-averaged unless
    settings.mirror is off);
    labelled: image-set positions of the labels; y_idx: their classes;
    z: propagate.embed(feats), when the caller already has it (validation folds share it).
    """
    s = settings or SelfTrainSettings()
    generator = torch.Generator().manual_seed(s.seed)
    torch.manual_seed(s.seed)
    labelled = np.asarray(labelled, dtype=int)
    y_idx = np.asarray(y_idx, dtype=np.int64)
    probe, scores, probe_share = teacher_scores(feats, labelled, y_idx, n_classes,
                                                s.probe_share, propagation, cancel, z=z,
                                                seed=s.seed)
    # trained on single views (the augmentations mirror anyway); mirror-averaged at the end,
    # like the head's starting features
    model = ClassifierModel(copy.deepcopy(backbone), probe.torch_head(), "linear",
                            flip_average=False).to(device)
    unl = np.setdiff1d(np.arange(len(image_set)), labelled)
    teacher = torch.from_numpy(scores).float()
    present = torch.from_numpy(np.bincount(y_idx, minlength=n_classes) > 0)
    target_dist = (present.float() / present.sum()).to(device)
    # labelled rows drawn so that every class is seen equally often
    draw_p = balanced_class_weights(y_idx, n_classes)[y_idx]
    draw_p /= draw_p.sum()
    rng = np.random.default_rng(s.seed)

    total = steps_for(len(unl), s)
    opt = torch.optim.AdamW([
        {"params": list(model.head.parameters()), "lr": s.lr},
        {"params": list(model.backbone.parameters()), "lr": s.lr * s.backbone_lr_factor}],
        weight_decay=s.weight_decay)
    base_lrs = [g["lr"] for g in opt.param_groups]
    running_mean = target_dist.clone()
    order, cursor = rng.permutation(unl), 0
    used = []
    amp = mixed_precision(device, s.precision)

    def logits(x: torch.Tensor) -> torch.Tensor:
        # the network in bf16 where that is native; softmax and losses in float32
        with torch.autocast(torch.device(device).type, dtype=amp or torch.bfloat16,
                            enabled=amp is not None):
            return model.logits(x).float()

    model.train()
    for step in range(total):
        check_cancel(cancel)
        fraction = step / max(1, total - 1)
        for group, lr in zip(opt.param_groups, base_lrs):
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * fraction))
        loss = torch.zeros((), device=device)
        if len(unl):
            if cursor + s.batch_size > len(order):
                order, cursor = rng.permutation(unl), 0
            rows = order[cursor:cursor + s.batch_size]
            cursor += len(rows)
            x = image_set.tensor(rows)
            weak = augment_batch(x, generator, s.mirror).to(device)
            strong = strong_augment(x, generator, s.mirror).to(device)
            with torch.no_grad():
                guess = torch.softmax(logits(weak), 1)
                running_mean = 0.99 * running_mean + 0.01 * guess.mean(0)
                guess = guess * (target_dist / running_mean.clamp(min=1e-6))
                guess = guess / guess.sum(1, keepdim=True)
                share = s.teacher_start + (s.teacher_end - s.teacher_start) * fraction
                target = share * teacher[rows].to(device) + (1 - share) * guess
                conf, pseudo = target.max(1)
                mask = (conf >= s.threshold).float()
            per = nn.functional.cross_entropy(logits(strong), pseudo, reduction="none")
            loss = loss + s.unlabelled_weight * (per * mask).mean()
            used.append(float(mask.mean()))
        pick = rng.choice(len(labelled), size=min(s.labelled_batch, max(2, len(labelled))),
                          p=draw_p)
        xl = augment_batch(image_set.tensor(labelled[pick]), generator, s.mirror).to(device)
        yl = torch.from_numpy(y_idx[pick]).to(device)
        loss = loss + nn.functional.cross_entropy(logits(xl), yl)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if progress is not None:
            progress(step + 1, total)
    with torch.no_grad():
        model.head.bias[~present.to(model.head.bias.device)] = -1e4  # unlabelled classes never win
    model.flip_average = s.mirror
    model.eval()
    tail = used[-max(1, len(used) // 10):] if used else [0.0]
    return model, {"steps": total, "threshold": s.threshold, "teacher_probe_share": probe_share,
                   "precision": str(amp).replace("torch.", "") if amp else "float32",
                   "pseudo_labelled_fraction": round(float(np.mean(tail)), 3)}
