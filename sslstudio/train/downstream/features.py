"""Frozen-backbone features, extracted once per (backbone weights, images) and reused.

The linear probe and kNN both work on these; a model-selection loop over many
folds and regularisation strengths therefore costs one forward pass, not many.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from sslstudio.train.downstream.inputs import CancelFn, ImageSet, ProgressFn, check_cancel

_MEMORY: OrderedDict[str, np.ndarray] = OrderedDict()
_MEMORY_ENTRIES = 4


def backbone_fingerprint(backbone: torch.nn.Module) -> str:
    digest = hashlib.sha1()
    for name, tensor in backbone.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _key(backbone, image_set: ImageSet, augment_average: bool) -> str:
    digest = hashlib.sha1(backbone_fingerprint(backbone).encode())
    digest.update(f"{image_set.size}|{augment_average}|{len(image_set)}".encode())
    digest.update("\n".join(image_set.ids).encode())
    # A sample of the pixels, so two arrays with the same ids never share features.
    sample = np.unique(np.linspace(0, len(image_set) - 1, num=min(len(image_set), 256)).astype(int))
    if len(sample):
        digest.update(np.ascontiguousarray(image_set.pixels[image_set.rows[sample]]).tobytes())
    return digest.hexdigest()


@torch.no_grad()
def extract_features(backbone: torch.nn.Module, image_set: ImageSet, *, batch_size: int = 128,
                     device: str | torch.device = "cpu", augment_average: bool = False,
                     progress: ProgressFn | None = None,
                     cancel: CancelFn | None = None) -> np.ndarray:
    """N×C float32 pooled features in eval mode; optionally averaged with the mirrored image."""
    was_training = backbone.training
    home = next(backbone.parameters()).device   # the caller's backbone goes back where it was
    backbone.eval().to(device)
    out = []
    n = len(image_set)
    try:
        for start in range(0, n, batch_size):
            check_cancel(cancel)
            x = image_set.tensor(np.arange(start, min(n, start + batch_size))).to(device)
            f = backbone(x)
            if augment_average:
                f = (f + backbone(torch.flip(x, dims=[3]))) / 2
            out.append(f.float().cpu().numpy())
            if progress is not None:
                progress(min(n, start + batch_size), n)
    finally:
        backbone.train(was_training).to(home)
    if not out:
        return np.zeros((0, getattr(backbone, "num_features", 0)), np.float32)
    return np.concatenate(out).astype(np.float32, copy=False)


def cached_features(backbone, image_set: ImageSet, *, cache_dir: str | Path | None = None,
                    **kwargs) -> np.ndarray:
    """extract_features, remembered in memory (last few) and optionally on disk as .npy."""
    key = _key(backbone, image_set, kwargs.get("augment_average", False))
    if key in _MEMORY:
        _MEMORY.move_to_end(key)
        return _MEMORY[key]
    path = Path(cache_dir) / f"features-{key[:20]}.npy" if cache_dir else None
    feats = None
    if path is not None and path.is_file():
        try:
            feats = np.load(path, allow_pickle=False)
            if feats.shape[0] != len(image_set):
                feats = None
        except (OSError, ValueError):
            feats = None  # a damaged cache file is simply recomputed
    if feats is None:
        feats = extract_features(backbone, image_set, **kwargs)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, feats)
            tmp.replace(path)
    _MEMORY[key] = feats
    while len(_MEMORY) > _MEMORY_ENTRIES:
        _MEMORY.popitem(last=False)
    return feats
