"""The project's images as one array, for the steps that need them all at once."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def load_project_images(store, size: int, progress=None) -> tuple[list[str], np.ndarray]:
    """(relpaths, N×S×S×3 uint8) from the project's decoded cache, or decoded on the fly."""
    try:
        from sslstudio.data.cache import DecodedCache
        cache = DecodedCache.open(store.cache_dir, size)
        if len(cache):
            return list(cache.relpaths), cache.images
    except Exception:  # noqa: BLE001 - no cache at this size: decode directly
        pass
    from sslstudio.data.decode import load_square

    relpaths, images = [], []
    all_paths = store.image_relpaths()
    for i, relpath in enumerate(all_paths):
        try:
            images.append(load_square(Path(store.image_root) / relpath, size))
            relpaths.append(relpath)
        except Exception:  # noqa: BLE001 - unreadable files are simply left out
            pass
        if progress and i % 64 == 0:
            progress(i, len(all_paths))
    if not images:
        raise ValueError("none of the project's images could be read")
    return relpaths, np.stack(images)
