"""Semi-supervised: a linear head on frozen features that learns from the unlabelled images too.

FixMatch (Sohn et al., 2020) in feature space, cheap enough for a CPU:

* every image is embedded once as its *weak* view (the image and its mirror,
  averaged: what the final model computes) and a few *strong* views (random
  resized crop, flip, colour jitter, cutout), all with the frozen backbone;
* a softmax-regression head on standardised features starts as the linear
  probe of the labels, then trains on
  - the labels (every view, class-balanced weights), and
  - for each unlabelled image, the head's own prediction on the weak view as
    target for a strong view, where that prediction is confident (≥ τ after
    distribution alignment: predictions are rescaled so that the classes come
    out balanced over the unlabelled set, which keeps one class from swallowing
    the rest);
* the pseudo-labels are refreshed every step, so they improve as the head does.

Only the head trains, so the whole thing is a few hundred full-batch steps on
an N×views×C array: seconds after the feature extraction. The trained head
folds the standardisation into one nn.Linear on raw (mirror-averaged)
features, so export and predict see an ordinary linear classifier.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sslstudio.train.downstream.inputs import CancelFn, ImageSet, ProgressFn, check_cancel
from sslstudio.train.downstream.validation import balanced_class_weights


@dataclass
class SemiSettings:
    strong_views: int = 4        # strong augmentations per image (features extracted once each)
    threshold: float = 0.8       # pseudo-label confidence τ (after distribution alignment)
    unlabelled_weight: float = 1.0
    steps: int = 300
    lr: float = 0.01
    weight_decay: float = 1e-3
    C: float = 1.0               # the starting linear probe's regularisation
    # blend label propagation's scores into the pseudo-labels (the graph's view of the data
    # steadies the head's own early guesses)
    propagation_prior: bool = False
    seed: int = 0


def strong_augment(x: torch.Tensor, generator: torch.Generator, mirror: bool = True) -> torch.Tensor:
    """Random resized crop (35–100 % of the area), flip (when `mirror`), colour jitter, cutout;
    x in [0, 1]."""
    n, _, s, _ = x.shape

    def uniform(lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(*shape, generator=generator)

    scale = uniform(0.35, 1.0, n).sqrt()
    aspect = uniform(np.log(3 / 4), np.log(4 / 3), n).exp().sqrt()
    sx, sy = (scale * aspect).clamp(max=1), (scale / aspect).clamp(max=1)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    if not mirror:
        flip = torch.ones_like(flip)
    tx, ty = uniform(-1, 1, n) * (1 - sx), uniform(-1, 1, n) * (1 - sy)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = sx * flip, tx
    theta[:, 1, 1], theta[:, 1, 2] = sy, ty
    grid = nn.functional.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    x = nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="reflection",
                                  align_corners=False)
    brightness = uniform(0.6, 1.4, n).view(n, 1, 1, 1).to(x)
    contrast = uniform(0.6, 1.4, n).view(n, 1, 1, 1).to(x)
    saturation = uniform(0.4, 1.6, n).view(n, 1, 1, 1).to(x)
    x = x * brightness
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean
    gray = x.mean(dim=1, keepdim=True)
    x = (x - gray) * saturation + gray
    side = max(1, s // 4)
    cy, cx = (torch.randint(0, s, (2, n), generator=generator)).tolist()
    x = x.clamp(0, 1).clone()
    for i in range(n):
        y0, x0 = max(0, cy[i] - side // 2), max(0, cx[i] - side // 2)
        x[i, :, y0:y0 + side, x0:x0 + side] = 0.5
    return x


_MEMORY: OrderedDict[str, np.ndarray] = OrderedDict()
_MEMORY_ENTRIES = 2


def strong_view_features(backbone: nn.Module, image_set: ImageSet, views: int, *, seed: int = 0,
                         batch_size: int = 128, device: str = "cpu", mirror: bool = True,
                         progress: ProgressFn | None = None,
                         cancel: CancelFn | None = None) -> np.ndarray:
    """views×N×C features of strongly augmented copies of every image (eval mode), remembered
    for the last few (backbone, images, views, seed): refitting with other labels is cheap."""
    from sslstudio.train.downstream.features import _key

    key = f"{_key(backbone, image_set, False)}|strong|{views}|{seed}|{mirror}"
    if key in _MEMORY:
        _MEMORY.move_to_end(key)
        return _MEMORY[key]
    feats = _extract_strong(backbone, image_set, views, seed=seed, batch_size=batch_size,
                            device=device, mirror=mirror, progress=progress, cancel=cancel)
    _MEMORY[key] = feats
    while len(_MEMORY) > _MEMORY_ENTRIES:
        _MEMORY.popitem(last=False)
    return feats


@torch.no_grad()
def _extract_strong(backbone, image_set, views, *, seed, batch_size, device, mirror, progress,
                    cancel):
    generator = torch.Generator().manual_seed(seed)
    was_training = backbone.training
    home = next(backbone.parameters()).device
    backbone.eval().to(device)
    n = len(image_set)
    out = np.zeros((views, n, getattr(backbone, "num_features", 0) or 0), np.float32)
    done, total = 0, views * n
    try:
        for start in range(0, n, batch_size):
            x = image_set.tensor(np.arange(start, min(n, start + batch_size)))
            for v in range(views):
                check_cancel(cancel)
                f = backbone(strong_augment(x, generator, mirror).to(device)).float().cpu().numpy()
                if out.shape[2] != f.shape[1]:
                    out = np.zeros((views, n, f.shape[1]), np.float32)
                out[v, start:start + len(x)] = f
                done += len(x)
                if progress is not None:
                    progress(done, total)
    finally:
        backbone.train(was_training).to(home)
    return out


class SemiHead:
    """A softmax regression on standardised features, trained FixMatch-style (see module doc)."""

    def __init__(self, n_classes: int, settings: SemiSettings | None = None) -> None:
        self.n_classes = n_classes
        self.s = settings or SemiSettings()
        self.mean = self.std = self.weight = self.bias = None
        self.info: dict = {}

    def fit(self, weak: np.ndarray, strong: np.ndarray | None, labelled: np.ndarray,
            y_idx: np.ndarray, cancel: CancelFn | None = None, z=None) -> "SemiHead":
        """weak: N×C (all images); strong: V×N×C or None (then the weak view stands in);
        labelled: rows of the labelled images; y_idx: their classes."""
        from sslstudio.train.downstream.linear_probe import LinearProbe

        s, k = self.s, self.n_classes
        torch.manual_seed(s.seed)
        self.mean = weak.mean(0)
        self.std = np.maximum(weak.std(0), 1e-6)

        def norm(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(((a - self.mean) / self.std).astype(np.float32))

        w_all = norm(weak)
        s_all = norm(strong) if strong is not None and len(strong) else w_all.unsqueeze(0)
        probe = LinearProbe(s.C, k, standardise=False).fit(w_all[labelled].numpy(), y_idx)
        head = nn.Linear(weak.shape[1], k)
        with torch.no_grad():
            h = probe.torch_head()
            head.weight.copy_(h.weight)
            head.bias.copy_(h.bias.clamp(min=-50))
        unl = np.setdiff1d(np.arange(len(weak)), labelled)
        prior = None
        if s.propagation_prior and len(unl):
            from sslstudio.train.downstream import propagate

            z = propagate.embed(weak) if z is None else z
            scores = propagate.propagate(z, labelled, np.asarray(y_idx), k, cancel=cancel)
            prior = torch.from_numpy(scores[unl]).float()
        y = torch.from_numpy(np.asarray(y_idx, np.int64))
        cw = torch.from_numpy(balanced_class_weights(np.asarray(y_idx), k)).float()
        present = cw > 0
        xl = torch.cat([w_all[labelled], *s_all[:, labelled]])
        yl = y.repeat(1 + s_all.shape[0])
        wu, su = w_all[unl], s_all[:, unl]
        opt = torch.optim.AdamW(head.parameters(), lr=s.lr, weight_decay=s.weight_decay)
        generator = torch.Generator().manual_seed(s.seed)
        target_dist = present.float() / present.sum()
        used = 0.0
        threads = torch.get_num_threads()
        torch.set_num_threads(1)       # tiny matrices: one thread is faster than several waiting
        try:
            used = self._train(head, opt, generator, xl, yl, cw, wu, su, prior, target_dist,
                               cancel)
        finally:
            torch.set_num_threads(threads)
        with torch.no_grad():
            head.bias[~present] = -1e4                 # classes without labels never win
        self.weight = head.weight.detach().double().numpy()
        self.bias = head.bias.detach().double().numpy()
        self.info = {"pseudo_labelled_fraction": round(used, 3)}
        return self

    def _train(self, head, opt, generator, xl, yl, cw, wu, su, prior, target_dist, cancel):
        s, used = self.s, 0.0
        for step in range(s.steps):
            if step % 20 == 0:
                check_cancel(cancel)
            loss = nn.functional.cross_entropy(head(xl), yl, weight=cw)
            if len(wu):
                with torch.no_grad():
                    p = torch.softmax(head(wu), 1)
                    if prior is not None:
                        p = (p + prior) / 2
                    p = p * (target_dist / p.mean(0).clamp(min=1e-6))   # distribution alignment
                    p = p / p.sum(1, keepdim=True)
                    conf, pseudo = p.max(1)
                    mask = (conf >= s.threshold).float()
                view = int(torch.randint(0, su.shape[0], (1,), generator=generator))
                per = nn.functional.cross_entropy(head(su[view]), pseudo, reduction="none")
                loss = loss + s.unlabelled_weight * (per * mask).mean()
                used = float(mask.mean())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return used

    def predict_proba(self, feats: np.ndarray) -> np.ndarray:
        logits = ((feats - self.mean) / self.std) @ self.weight.T + self.bias
        logits -= logits.max(1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(1, keepdims=True)

    def torch_head(self) -> nn.Linear:
        """One nn.Linear on raw features: W/σ and b − W·μ/σ."""
        weight = self.weight / self.std
        bias = self.bias - weight @ self.mean
        head = nn.Linear(weight.shape[1], self.n_classes)
        with torch.no_grad():
            head.weight.copy_(torch.from_numpy(weight).float())
            head.bias.copy_(torch.from_numpy(bias).float())
        return head


def out_of_fold(weak: np.ndarray, strong, labelled: np.ndarray, y_idx: np.ndarray, folds,
                n_classes: int, settings: SemiSettings | None = None,
                cancel: CancelFn | None = None) -> np.ndarray:
    """Validation probabilities: each fold's head never saw the labels it is scored on
    (their images take part as unlabelled ones)."""
    from sslstudio.train.downstream.propagate import embed

    z = embed(weak)
    probs = np.zeros((len(y_idx), n_classes))
    for train, val in folds:
        check_cancel(cancel)
        head = SemiHead(n_classes, settings).fit(weak, strong, labelled[train], y_idx[train],
                                                 cancel, z=z)
        probs[val] = head.predict_proba(weak[labelled[val]])
    return probs
