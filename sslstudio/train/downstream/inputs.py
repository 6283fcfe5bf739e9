"""Images for the classifier stage: a uint8 array or a DecodedCache, seen as one indexable set."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

try:
    from sslstudio.data import Cancelled
except ImportError:  # pragma: no cover - until sslstudio.data defines it
    class Cancelled(Exception):
        """The user asked to stop."""

ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]


@dataclass
class ImageSet:
    """Row i is image ids[i]: pixels[rows[i]] is S×S×3 uint8 RGB (the app's pixel convention)."""
    pixels: np.ndarray            # N×S×S×3 uint8 (array or memmap)
    ids: list[str]
    rows: np.ndarray              # index into pixels for each id

    @property
    def size(self) -> int:
        return int(self.pixels.shape[1])

    def __len__(self) -> int:
        return len(self.ids)

    def tensor(self, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
        """Float N×3×S×S in [0, 1] for the given positions (backbones normalise inside)."""
        rows = self.rows[np.asarray(indices, dtype=int)]
        order = np.argsort(rows)                       # memmaps read faster in order
        batch = np.asarray(self.pixels[rows[order]])
        batch = batch[np.argsort(order)]
        return torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0)


def as_image_set(images, ids: Sequence[str] | None = None) -> ImageSet:
    """Accept an N×S×S×3 uint8 array, a DecodedCache, or (DecodedCache, relpaths)."""
    if isinstance(images, ImageSet):
        return images
    if isinstance(images, tuple) and len(images) == 2:
        cache, relpaths = images
        relpaths = list(relpaths)
        rows = np.array([cache.index_of(r) for r in relpaths], dtype=int)
        return ImageSet(cache.images, relpaths, rows)
    if hasattr(images, "relpaths") and hasattr(images, "images"):
        relpaths = list(images.relpaths) if ids is None else list(ids)
        rows = (np.arange(len(relpaths)) if ids is None
                else np.array([images.index_of(r) for r in relpaths], dtype=int))
        return ImageSet(images.images, relpaths, rows)
    pixels = np.asarray(images)
    if pixels.ndim != 4 or pixels.shape[3] != 3 or pixels.shape[1] != pixels.shape[2]:
        raise ValueError(f"images must be N×S×S×3 uint8, got shape {pixels.shape}")
    if pixels.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {pixels.dtype}")
    ids = [str(i) for i in range(len(pixels))] if ids is None else [str(i) for i in ids]
    if len(ids) != len(pixels):
        raise ValueError(f"{len(ids)} ids for {len(pixels)} images")
    return ImageSet(pixels, ids, np.arange(len(pixels)))


def align_labels(image_set: ImageSet, labels) -> list[str | None]:
    """Labels per row: from a mapping id → class, or a sequence aligned with the images."""
    if isinstance(labels, Mapping):
        unknown = [k for k in labels if k not in set(image_set.ids)]
        if unknown and len(unknown) == len(labels):
            raise ValueError(f"none of the {len(labels)} labelled files are among the images "
                             f"(first: {unknown[0]})")
        return [None if labels.get(i) in (None, "") else str(labels[i]) for i in image_set.ids]
    labels = list(labels)
    if len(labels) != len(image_set):
        raise ValueError(f"{len(labels)} labels for {len(image_set)} images")
    return [None if v is None or v == "" else str(v) for v in labels]


def check_cancel(cancel: CancelFn | None) -> None:
    if cancel is not None and cancel():
        raise Cancelled("cancelled")
