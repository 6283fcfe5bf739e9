"""Decode any image file to 8-bit RGB, or say in a few words why it cannot be.

`load_square` is the one pixel convention of the app (cache, predict, export
model card): EXIF orientation applied, every mode converted to RGB
(transparency composited on white), shorter side resized to S with an
antialiased bilinear filter, centre crop, S×S×3 uint8.
"""

from __future__ import annotations

import os
import re
import warnings

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

# Refuse images above this many pixels (a 200 MP photo is already huge; larger
# is almost surely a decompression bomb). PIL itself raises at twice its limit.
MAX_PIXELS = 200_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False
# We check the size ourselves right after opening, so PIL's warning for images
# between MAX_PIXELS and 2×MAX_PIXELS carries no extra information.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

# Transparent pixels become this colour, the same everywhere.
BACKGROUND = (255, 255, 255)

# Which PIL plugin to try first for each extension (skips probing every format).
_FORMAT_HINT = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".gif": "GIF",
                ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP"}


class DecodeError(Exception):
    """An image that cannot be decoded; `reason` is short and meant for people."""

    def __init__(self, reason: str, path=None) -> None:
        self.reason = reason
        self.path = None if path is None else os.fspath(path)
        super().__init__(f"{self.path}: {reason}" if self.path else reason)


# The bytes a whole file of these formats ends with, give or take trailing padding or
# metadata; a file without them near its end is decoded once to see whether it is cut short.
_END_MARKERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND"}
_TAIL_BYTES = 4096


def check_header(path) -> tuple[int, int]:
    """(width, height) from the header, or DecodeError; no pixel decode, except for a
    JPEG or PNG whose end marker is missing (a cut-off download or copy), which is
    decoded so that a truncated file is reported now rather than when training starts."""
    with _open(path) as im:
        marker = _END_MARKERS.get(im.format)
        if marker is not None and not _tail_has(im, marker):
            try:
                im.load()
            except Exception as exc:
                raise DecodeError(_reason(exc, path), path) from None
        return im.size


def _tail_has(im: Image.Image, marker: bytes) -> bool:
    fp = im.fp
    try:
        where = fp.tell()
        fp.seek(0, os.SEEK_END)
        fp.seek(max(0, fp.tell() - _TAIL_BYTES))
        tail = fp.read(_TAIL_BYTES)
        fp.seek(where)
    except (AttributeError, OSError, ValueError):
        return True  # cannot look: leave it to the decode, as before
    return marker in tail


def load_rgb(path, *, draft_size: int | None = None) -> Image.Image:
    """The image as RGB with EXIF orientation applied; raises DecodeError.

    `draft_size` lets JPEG decode at a reduced scale whose shorter side is
    still at least that many pixels (much faster for small targets).
    """
    with _open(path) as im:
        try:
            if draft_size and im.format == "JPEG":
                im.draft(None, (draft_size, draft_size))
            im.load()
            try:
                upright = ImageOps.exif_transpose(im)
            except Exception:  # a broken EXIF block should not cost the pixels
                upright = im.copy()
            return _to_rgb(upright)
        except DecodeError:
            raise
        except Exception as exc:  # PIL raises many kinds for broken data
            raise DecodeError(_reason(exc, path), path) from None


def load_square(path, size: int) -> np.ndarray:
    """size×size×3 uint8: shorter side resized to `size` (antialiased bilinear), centre crop."""
    im = load_rgb(path, draft_size=size)
    w, h = im.size
    side = min(w, h)
    left, top = (w - side) / 2, (h - side) / 2
    if (w, h) == (size, size):
        square = im
    else:
        # One resize over the centre box = resize shorter side, then centre crop.
        square = im.resize((size, size), Image.Resampling.BILINEAR,
                           box=(left, top, left + side, top + side), reducing_gap=3.0)
    return np.array(square, dtype=np.uint8).reshape(size, size, 3)


def _open(path) -> Image.Image:
    """Image.open with the header checked; raises DecodeError with a short reason."""
    try:
        if os.path.getsize(path) == 0:
            raise DecodeError("empty file", path)
    except OSError as exc:
        raise DecodeError(_reason(exc, path), path) from None
    hint = _FORMAT_HINT.get(os.path.splitext(os.fspath(path))[1].lower())
    try:
        try:
            im = Image.open(path, formats=[hint] if hint else None)
        except UnidentifiedImageError:
            if hint is None:
                raise
            im = Image.open(path)  # a PNG named .jpg is still a fine image
    except Exception as exc:
        raise DecodeError(_reason(exc, path), path) from None
    w, h = im.size
    if w * h > MAX_PIXELS:
        im.close()
        raise DecodeError(f"too large: {w}×{h} pixels", path)
    if w <= 0 or h <= 0:
        im.close()
        raise DecodeError("corrupt header (no pixels)", path)
    return im


def _to_rgb(im: Image.Image) -> Image.Image:
    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:
        return im
    if mode.startswith("I;16") or mode in ("I", "F"):
        return Image.fromarray(_high_depth_to_uint8(im), "L").convert("RGB")
    if mode in ("RGBA", "LA", "La", "RGBa", "PA") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


def _high_depth_to_uint8(im: Image.Image) -> np.ndarray:
    """16-bit / 32-bit integer / float grey to 0..255, keeping relative brightness."""
    a = np.asarray(im)
    if im.mode.startswith("I;16"):
        return (a.astype(np.uint32) * 255 // 65535).astype(np.uint8)
    a = a.astype(np.float64)
    finite = a[np.isfinite(a)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if im.mode == "F" and lo >= 0.0 and hi <= 1.0:
        scaled = a * 255.0  # float images in [0, 1]
    elif lo >= 0 and hi <= 255:
        scaled = a
    elif lo >= 0 and hi <= 65535:
        scaled = a * (255.0 / 65535.0)  # 16-bit data stored in a 32-bit mode
    else:
        scaled = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    return np.clip(np.nan_to_num(scaled), 0, 255).round().astype(np.uint8)


_PIXELS_IN_MESSAGE = re.compile(r"\((\d+) pixels\)")


def _reason(exc: BaseException, path=None) -> str:
    """A few words for people, from whatever PIL or the OS raised."""
    text = str(exc)
    if isinstance(exc, Image.DecompressionBombError):
        m = _PIXELS_IN_MESSAGE.search(text)
        return f"too large: {int(m.group(1)):,} pixels" if m else "too large (decompression bomb)"
    if isinstance(exc, UnidentifiedImageError):
        return "not an image"
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "is a folder"
    if isinstance(exc, MemoryError):
        return "too large to decode (out of memory)"
    lowered = text.lower()
    if "truncated" in lowered or "broken data stream" in lowered or "premature end" in lowered:
        return "truncated file"
    if isinstance(exc, (SyntaxError, EOFError)) or "not a " in lowered:
        return f"corrupt image ({text})" if text else "corrupt image"
    short = text if len(text) <= 80 else text[:77] + "..."
    return f"cannot decode ({short})" if short else f"cannot decode ({type(exc).__name__})"
