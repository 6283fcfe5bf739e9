"""Letters A–J rendered from every font installed here (the notMNIST idea): a real, harder
benchmark than the digits, built offline from type that people designed.

  apt-get install fonts-aenigma fonts-adf-*   # ~600 font files with Latin capitals
  python benchmarks/font_letters.py OUT_FOLDER   # OUT/<letter>/<font>.png, prints the count

Fonts, not images, are split between the training pool and the test set, so every test
letter comes from a typeface the classifier never saw. Fonts that lack a letter (their
"missing glyph" box comes out instead), draw blanks, or draw several letters alike are left
out, as are fonts whose glyphs repeat another font's exactly.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

LETTERS = tuple("ABCDEFGHIJ")
FONT_DIRS = ("/usr/share/fonts",)
MISSING = "\U0010fffd"   # a private-use code point no Latin font draws: shows its .notdef box


def font_files(dirs=FONT_DIRS) -> list[Path]:
    found = []
    for d in dirs:
        for pattern in ("*.ttf", "*.otf", "*.TTF", "*.OTF"):
            found.extend(Path(d).rglob(pattern))
    return sorted(set(found))


def _glyph(font, char: str) -> np.ndarray | None:
    """The glyph's ink as a uint8 array cropped to its box, or None when it has none."""
    mask = font.getmask(char, mode="L")
    w, h = mask.size
    if w == 0 or h == 0:
        return None
    ink = np.asarray(mask, dtype=np.uint8).reshape(h, w)
    return ink if ink.max() > 64 else None


def _place(ink: np.ndarray, size: int, margin: int) -> np.ndarray:
    """Scale the glyph to fit (size - 2·margin) px on its long side, centred; white on black."""
    from PIL import Image

    box = size - 2 * margin
    h, w = ink.shape
    scale = box / max(h, w)
    glyph = Image.fromarray(ink).resize((max(1, round(w * scale)), max(1, round(h * scale))),
                                        Image.LANCZOS)
    canvas = Image.new("L", (size, size), 0)
    canvas.paste(glyph, ((size - glyph.width) // 2, (size - glyph.height) // 2))
    return np.asarray(canvas.convert("RGB"))


def render_font(path: Path, size: int, margin: int = 3) -> list[np.ndarray] | None:
    """The ten letters of one font at size×size, or None when the font does not draw all ten
    as distinct glyphs."""
    from PIL import ImageFont

    try:
        font = ImageFont.truetype(str(path), 64)
        missing = _glyph(font, MISSING)
        inks = [_glyph(font, ch) for ch in LETTERS]
    except (OSError, ValueError):
        return None
    if any(ink is None for ink in inks):
        return None
    if missing is not None and any(ink.shape == missing.shape and np.array_equal(ink, missing)
                                   for ink in inks):
        return None
    images = [_place(ink, size, margin) for ink in inks]
    digests = {hashlib.sha1(im.tobytes()).hexdigest() for im in images}
    if len(digests) < len(LETTERS):       # a symbol font drawing one shape for many letters
        return None
    return images


def font_letters(size: int = 32, dirs=FONT_DIRS) -> tuple[np.ndarray, list[str], list[str]]:
    """(images, letter of each, font of each) for every usable, distinct installed font."""
    images, letters, fonts, seen = [], [], [], set()
    for path in font_files(dirs):
        rendered = render_font(path, size)
        if rendered is None:
            continue
        digest = hashlib.sha1(b"".join(im.tobytes() for im in rendered)).hexdigest()
        if digest in seen:                # the same design installed twice
            continue
        seen.add(digest)
        images.extend(rendered)
        letters.extend(LETTERS)
        fonts.extend([path.stem] * len(LETTERS))
    if not images:
        raise SystemExit("no usable fonts found: apt-get install fonts-aenigma fonts-adf-*")
    return np.stack(images), letters, fonts


def split_by_font(fonts: list[str], test_share: float, seed: int = 0):
    """Indices of the training and test images, with each font wholly on one side."""
    rng = np.random.default_rng(seed)
    names = sorted(set(fonts))
    rng.shuffle(names)
    test_fonts = set(names[:round(len(names) * test_share)])
    test = np.array([i for i, f in enumerate(fonts) if f in test_fonts])
    train = np.array([i for i, f in enumerate(fonts) if f not in test_fonts])
    return train, test


def main(argv=None) -> int:
    from PIL import Image

    out = Path((argv or sys.argv[1:])[0])
    images, letters, fonts = font_letters()
    for img, letter, font in zip(images, letters, fonts):
        (out / letter).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(out / letter / f"{font}.png")
    print(f"{len(images)} images from {len(set(fonts))} fonts in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
