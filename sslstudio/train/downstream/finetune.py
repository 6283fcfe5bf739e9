"""Training the network on the labels: partial fine-tuning, full fine-tuning, from scratch.

All three are one loop with different trainable parts and learning rates:
  partial  – the last N stages of the backbone + head, the rest frozen (and in
             eval mode, so frozen BatchNorm statistics stay as pretrained);
  finetune – every layer, the backbone at head lr × backbone_lr_factor;
  scratch  – the same architecture with random weights, one learning rate.
The head of partial/finetune starts from a linear probe (fits faster and keeps
the pretrained features from being wrecked by a random head's first steps).

Validation folds are trained side by side, epoch by epoch, and training stops
when the mean validation score across folds stops improving ("early stopping on
validation"); the epoch count for the final model is chosen the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sslstudio.train.downstream.inputs import CancelFn, ImageSet, ProgressFn, check_cancel
from sslstudio.train.downstream.model import ClassifierModel
from sslstudio.train.downstream.validation import balanced_class_weights


@dataclass
class TrainSettings:
    epochs: int = 30
    lr: float = 1e-3                   # head learning rate (AdamW)
    backbone_lr_factor: float = 0.1    # finetune/partial: backbone lr = lr × this
    weight_decay: float = 1e-4
    trainable_stages: int = 1          # partial: how many of the last stages train
    batch_size: int = 32
    patience: int = 5
    augment: bool = True
    mirror: bool = True                # False: augmentations never mirror (b / d classes)
    device: str = "cpu"
    seed: int = 0


def backbone_stages(backbone: nn.Module) -> list[nn.Module]:
    """The backbone's blocks in input→output order (its `stages` if it names them)."""
    stages = getattr(backbone, "stages", None)
    if stages is not None:
        return list(stages)
    module = backbone
    while True:
        with_params = [m for m in module.children() if any(True for _ in m.parameters())]
        if len(with_params) != 1:
            break
        module = with_params[0]
    if with_params and all(not any(True for _ in m.children()) for m in with_params):
        # a flat conv/bn/relu sequence: a stage starts at each downsampling conv
        groups: list[list[nn.Module]] = []
        for m in with_params:
            strided = isinstance(m, nn.Conv2d) and m.stride != (1, 1)
            if not groups or strided:
                groups.append([])
            groups[-1].append(m)
        return [nn.ModuleList(g) for g in groups]
    return with_params


def augment_batch(x: torch.Tensor, generator: torch.Generator, mirror: bool = True) -> torch.Tensor:
    """Random horizontal flip (when `mirror`) and a small random crop (reflect-pad by S/8,
    crop back)."""
    n, _, s, _ = x.shape
    flip = torch.rand(n, generator=generator) < 0.5   # drawn either way: same crops as with it
    if mirror:
        x = torch.where(flip.view(n, 1, 1, 1).to(x.device), torch.flip(x, dims=[3]), x)
    pad = max(1, s // 8)
    padded = nn.functional.pad(x, (pad, pad, pad, pad), mode="reflect")
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator).tolist()
    return torch.stack([padded[i, :, dy:dy + s, dx:dx + s] for i, (dy, dx) in enumerate(offsets)])


def _set_trainable(model: ClassifierModel, method: str, trainable_stages: int) -> None:
    for p in model.backbone.parameters():
        p.requires_grad = method in ("finetune", "scratch")
    if method == "partial":
        for stage in backbone_stages(model.backbone)[-max(1, trainable_stages):]:
            for p in stage.parameters():
                p.requires_grad = True


def _train_mode(model: ClassifierModel, method: str, trainable_stages: int) -> None:
    model.train()
    if method == "partial":
        model.backbone.eval()
        for stage in backbone_stages(model.backbone)[-max(1, trainable_stages):]:
            stage.train()


def _optimizer(model: ClassifierModel, method: str, s: TrainSettings) -> torch.optim.Optimizer:
    backbone_lr = s.lr if method == "scratch" else s.lr * s.backbone_lr_factor
    groups = [{"params": list(model.head.parameters()), "lr": s.lr}]
    trainable = [p for p in model.backbone.parameters() if p.requires_grad]
    if trainable:
        groups.append({"params": trainable, "lr": backbone_lr})
    return torch.optim.AdamW(groups, weight_decay=s.weight_decay)


class _Run:
    """One model being trained on one set of rows."""

    def __init__(self, model, rows, label_of_image, n_classes, method, settings, generator):
        """rows: image-set positions to train on; label_of_image: class index per position."""
        self.model, self.rows = model.to(settings.device), rows
        self.method, self.s = method, settings
        self.y = torch.from_numpy(label_of_image[rows]).long()
        weights = torch.from_numpy(balanced_class_weights(label_of_image[rows], n_classes)).float()
        self.loss_fn = nn.CrossEntropyLoss(weight=weights.to(settings.device))
        _set_trainable(model, method, settings.trainable_stages)
        self.opt = _optimizer(model, method, settings)
        self.generator = generator

    def epoch(self, image_set: ImageSet, cancel: CancelFn | None) -> float:
        _train_mode(self.model, self.method, self.s.trainable_stages)
        order = torch.randperm(len(self.rows), generator=self.generator).numpy()
        bs = self.s.batch_size
        if len(order) % bs == 1 and len(order) > 1:
            bs += 1  # a batch of one breaks BatchNorm in training mode
        total = 0.0
        for start in range(0, len(order), bs):
            check_cancel(cancel)
            pick = order[start:start + bs]
            x = image_set.tensor(self.rows[pick]).to(self.s.device)
            if self.s.augment:
                x = augment_batch(x, self.generator, self.s.mirror)
            loss = self.loss_fn(self.model.logits(x), self.y[pick].to(self.s.device))
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            total += loss.item() * len(pick)
        return total / max(1, len(order))


@torch.no_grad()
def predict_probs(model: ClassifierModel, image_set: ImageSet, rows: np.ndarray,
                  device: str = "cpu", batch_size: int = 128) -> np.ndarray:
    model.eval().to(device)
    out = [model(image_set.tensor(rows[i:i + batch_size]).to(device)).double().cpu().numpy()
           for i in range(0, len(rows), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 0))


def train_with_validation(make_model, image_set: ImageSet, labelled: np.ndarray,
                          y_idx: np.ndarray, n_classes: int, method: str, folds,
                          settings: TrainSettings, *, progress: ProgressFn | None = None,
                          cancel: CancelFn | None = None):
    """Train on the folds side by side, then on all labels for the chosen number of epochs.

    `labelled` are image-set positions of the labelled rows; y_idx and folds
    index into `labelled`. Returns (final model, honest out-of-fold probabilities
    (NaN where not validated), epochs, history list of per-epoch mean scores).
    """
    from sslstudio.train.downstream.selection import score, select

    generator = torch.Generator().manual_seed(settings.seed)
    torch.manual_seed(settings.seed)
    per_image = np.full(len(image_set), -1, dtype=np.int64)
    per_image[labelled] = y_idx
    runs = [_Run(make_model(train), labelled[train], per_image, n_classes, method, settings,
                 generator) for train, _ in folds]
    curves: list[np.ndarray] = []          # per epoch: N×K out-of-fold probabilities
    history: list[float] = []
    total_steps = settings.epochs * (len(folds) + 1)
    done = 0
    best, since_best = -np.inf, 0
    validated = np.concatenate([v for _, v in folds]) if folds else np.zeros(0, int)
    for _ in range(settings.epochs if folds else 0):
        probs = np.zeros((len(y_idx), n_classes))
        for run, (_, val) in zip(runs, folds):
            run.epoch(image_set, cancel)
            probs[val] = predict_probs(run.model, image_set, labelled[val], settings.device)
            done += 1
            if progress is not None:
                progress(done, total_steps)
        curves.append(probs)
        value = score(probs[validated], y_idx[validated])
        history.append(value)
        if value > best + 1e-6:
            best, since_best = value, 0
        else:
            since_best += 1
            if since_best >= settings.patience:
                break
    del runs
    if curves:
        epochs, honest = select(list(range(1, len(curves) + 1)), curves, y_idx, folds)
    else:
        epochs, honest = settings.epochs, np.full((len(y_idx), n_classes), np.nan)
    total_steps = done + epochs
    final = _Run(make_model(np.arange(len(y_idx))), labelled, per_image, n_classes, method,
                 settings, generator)
    for _ in range(epochs):
        final.epoch(image_set, cancel)
        done += 1
        if progress is not None:
            progress(done, total_steps)
    final.model.eval()
    return final.model, honest, epochs, history
