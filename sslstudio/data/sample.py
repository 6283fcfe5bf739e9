"""The built-in sample dataset: small procedural pictures in six visually distinct classes.

Each picture is a little scene: a mottled background of random colour, in a
third of the pictures a textured ground band at the bottom, light from the
upper left (objects cast a shadow to the lower right), and one object with
random colour, position, scale and a small tilt. That gives every pretext task
something real to learn:

* rotation — mostly the object says which way is up (roofs, trunks, strings and
  flag poles; the shadow for the symmetric ones); the ground band only sometimes,
  so the task cannot be solved from one global cue (version 1 had a ground line
  and a sky gradient in every picture: rotation was solved in ~20 steps and the
  features stopped improving);
* jigsaw and inpainting — objects have parts with fixed spatial relations;
* colorization — trees are green-ish and stars warm, but balloons, houses,
  flags and checkers take any colour, so colour helps yet never gives the class;
* contrastive — the classes differ in shape and texture, not in one global colour.

Files are `img_00000.jpg` … in one flat folder, in shuffled class order, so no
name leaks a label. The true labels are kept in the hidden file
`DEST/.sslstudio-truth.csv` (`filename,label`, the same format `sslstudio
labels import --csv` reads); hidden files are skipped by the scanner, so the
truth never shows up as an image. A hidden marker `DEST/.sslstudio-sample.json`
is written last: generation is idempotent and resumes after an interruption.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from sslstudio.data import Cancelled

CLASSES = ("balloon", "house", "tree", "star", "flag", "checker")
TRUTH_FILE = ".sslstudio-truth.csv"
MARKER_FILE = ".sslstudio-sample.json"
# Bump when the pictures change, so old sample folders are regenerated.
SAMPLE_VERSION = 2
DEFAULT_PER_CLASS = 400
_SUPERSAMPLE = 2  # draw at 2× and shrink: cheap antialiasing for polygon edges
GROUND_SHARE = 1 / 3  # pictures with a ground band


def generate_sample_dataset(dest, n_per_class: int = DEFAULT_PER_CLASS, size: int = 64,
                            seed: int = 0, progress: Callable[[int, int], None] | None = None,
                            cancel: Callable[[], bool] | None = None) -> Path:
    """Write the sample images (and their hidden truth file) into `dest`; returns `dest`.

    Does nothing when `dest` already holds a complete dataset made with the same
    settings; otherwise writes only the missing images. `progress(done, total)`
    is called as images are written; `cancel()` returning True raises
    `Cancelled` (files already written stay and are reused next time).
    """
    dest = Path(dest)
    settings = {"version": SAMPLE_VERSION, "n_per_class": int(n_per_class), "size": int(size),
                "seed": int(seed), "classes": list(CLASSES)}
    total = len(CLASSES) * int(n_per_class)
    if _marker(dest) == {**settings, "count": total} and sample_is_complete(dest):
        if progress is not None:
            progress(total, total)
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    marker = dest / MARKER_FILE
    if marker.exists():
        marker.unlink()  # settings changed: the folder is incomplete until rewritten
        for old in dest.glob("img_*.jpg"):
            old.unlink()

    labels = class_order(total, seed)
    names = [_file_name(i) for i in range(total)]
    for i, (name, label) in enumerate(zip(names, labels)):
        if i % 32 == 0:
            if cancel is not None and cancel():
                raise Cancelled("sample generation cancelled")
            if progress is not None:
                progress(i, total)
        path = dest / name
        if path.exists() and path.stat().st_size > 0:
            continue  # written by an earlier, interrupted run (same seed → same picture)
        picture = draw_sample(CLASSES[label], np.random.default_rng([seed, i]), size)
        tmp = dest / f".{name}.tmp"
        picture.save(tmp, format="JPEG", quality=92, subsampling=0)
        os.replace(tmp, path)  # never a half-written image under a real name

    _write_atomic(dest / TRUTH_FILE, _truth_csv(names, labels))
    _write_atomic(marker, json.dumps({**settings, "count": total}, indent=1))
    if progress is not None:
        progress(total, total)
    return dest


def sample_truth(dest) -> dict[str, str]:
    """relpath → true class name, read from the hidden truth file."""
    with open(Path(dest) / TRUTH_FILE, newline="", encoding="utf-8") as f:
        return {row["filename"]: row["label"] for row in csv.DictReader(f)}


def sample_is_complete(dest) -> bool:
    """True when `dest` holds a finished sample dataset of the current version."""
    dest = Path(dest)
    info = _marker(dest)
    if info is None or info.get("version") != SAMPLE_VERSION:
        return False
    if not (dest / TRUTH_FILE).is_file():
        return False
    count = int(info.get("count", -1))
    return all((dest / _file_name(i)).is_file() for i in range(count))


def class_order(total: int, seed: int) -> np.ndarray:
    """Class index of each file: balanced, shuffled so file names carry no label."""
    labels = np.arange(total) % len(CLASSES)
    np.random.default_rng([seed, 0x5A3D]).shuffle(labels)
    return labels


# ------------------------------------------------------------------ drawing
def draw_sample(cls: str, rng: np.random.Generator, size: int = 64) -> Image.Image:
    """One scene with one object of class `cls`, size×size RGB."""
    big = size * _SUPERSAMPLE
    ground_y = big * rng.uniform(0.72, 0.86) if rng.uniform() < GROUND_SHARE else float(big)
    canvas = Image.fromarray(_background(rng, big, ground_y), "RGB")
    draw = ImageDraw.Draw(canvas)
    cx = big * rng.uniform(0.32, 0.68)
    scale = big * rng.uniform(0.22, 0.34)  # object "radius"
    cy = min(ground_y - scale * 0.9, big * rng.uniform(0.35, 0.6))
    tilt = math.radians(rng.uniform(-20, 20))
    shapes = _OBJECTS[cls](rng)
    place = _placer(cx, cy, scale, tilt)
    shadow = (scale * 0.10, scale * 0.14)  # light from the upper left
    for points, _ in shapes:
        draw.polygon([(x + shadow[0], y + shadow[1]) for x, y in place(points)],
                     fill=(25, 25, 30))
    for points, color in shapes:
        draw.polygon(place(points), fill=tuple(int(c) for c in color))
    small = np.asarray(canvas.reduce(_SUPERSAMPLE), dtype=np.float32)
    small += rng.normal(0.0, 5.0, small.shape)  # a little sensor noise over everything
    return Image.fromarray(np.clip(small, 0, 255).astype(np.uint8), "RGB")


def _background(rng: np.random.Generator, big: int, ground_y: float) -> np.ndarray:
    """A flat sky colour, a textured ground band below ``ground_y``, low-frequency blotches."""
    y = np.arange(big, dtype=np.float32)[:, None, None] / big
    sky = _hsv(rng.uniform(0, 1), rng.uniform(0.1, 0.35), rng.uniform(0.6, 1.0)) \
        * np.ones((big, 1, 1), np.float32)
    ground_color = _hsv(rng.uniform(0.05, 0.35), rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.6))
    tilt = rng.uniform(-0.08, 0.08) * (np.arange(big, dtype=np.float32) - big / 2)
    is_ground = (np.arange(big)[:, None] > ground_y + tilt[None, :])[..., None]
    image = np.where(is_ground, ground_color * (0.8 + 0.4 * y), sky)
    blotches = rng.normal(0.0, 18.0, (8, 8, 3)).astype(np.float32)
    blotches = np.kron(blotches, np.ones((big // 8 + 1, big // 8 + 1, 1), np.float32))[:big, :big]
    grain = rng.normal(0.0, 10.0, (big, big, 1)).astype(np.float32) * is_ground
    return np.clip(image + blotches * 0.5 + grain, 0, 255).astype(np.uint8)


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    """HSV in [0, 1] → RGB float in [0, 255]."""
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array(rgb, np.float32) * 255.0


def _vivid(rng: np.random.Generator, hue: float | None = None) -> np.ndarray:
    return _hsv(rng.uniform(0, 1) if hue is None else hue % 1.0,
                rng.uniform(0.55, 1.0), rng.uniform(0.55, 0.95))


def _placer(cx: float, cy: float, scale: float, tilt: float):
    """Object coordinates (unit radius, y down) → canvas coordinates."""
    cos_t, sin_t = math.cos(tilt), math.sin(tilt)

    def place(points):
        return [(cx + scale * (x * cos_t - y * sin_t), cy + scale * (x * sin_t + y * cos_t))
                for x, y in points]
    return place


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 36):
    return [(cx + rx * math.cos(a), cy + ry * math.sin(a))
            for a in np.linspace(0, 2 * math.pi, n, endpoint=False)]


def _rect(x0: float, y0: float, x1: float, y1: float):
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


# Each object: a list of (polygon in unit coordinates, RGB colour), drawn in order.
def _balloon(rng):
    color = _vivid(rng)
    return [(_rect(-0.03, 0.55, 0.03, 1.25), (60, 60, 60)),  # string hangs down
            (_ellipse(0, 0, 0.55, 0.7), color),
            ([(-0.1, 0.75), (0.1, 0.75), (0, 0.62)], color * 0.7),  # knot at the bottom
            (_ellipse(-0.22, -0.3, 0.12, 0.18, 16), np.minimum(color + 90, 255))]  # highlight


def _house(rng):
    wall = _vivid(rng)
    roof = _hsv(rng.uniform(-0.05, 0.08) % 1.0, rng.uniform(0.5, 0.9), rng.uniform(0.3, 0.6))
    return [(_rect(-0.7, -0.1, 0.7, 0.9), wall),
            ([(-0.9, -0.05), (0.0, -0.85), (0.9, -0.05)], roof),  # roof on top
            (_rect(-0.15, 0.35, 0.15, 0.9), wall * 0.35),  # door at the bottom
            (_rect(0.3, 0.1, 0.55, 0.35), (225, 235, 250))]


def _tree(rng):
    hue = rng.uniform(0.2, 0.42)  # greens, from yellowish to bluish
    leaves = [_hsv(hue + rng.uniform(-0.03, 0.03), rng.uniform(0.5, 0.9), rng.uniform(0.35, 0.75))
              for _ in range(3)]
    trunk = _hsv(rng.uniform(0.05, 0.1), 0.6, rng.uniform(0.3, 0.45))
    return [(_rect(-0.12, 0.45, 0.12, 1.0), trunk),
            ([(-0.8, 0.55), (0.0, -0.05), (0.8, 0.55)], leaves[0]),
            ([(-0.65, 0.2), (0.0, -0.45), (0.65, 0.2)], leaves[1]),
            ([(-0.45, -0.2), (0.0, -0.9), (0.45, -0.2)], leaves[2])]


def _star(rng):
    color = _vivid(rng, hue=rng.uniform(-0.02, 0.16))  # red through yellow
    points = []
    for k in range(10):
        radius = 0.95 if k % 2 == 0 else 0.4
        angle = -math.pi / 2 + k * math.pi / 5  # first point straight up
        points.append((radius * math.cos(angle), radius * math.sin(angle)))
    return [(points, color), (_ellipse(0, 0, 0.15, 0.15, 12), np.minimum(color + 60, 255))]


def _flag(rng):
    stripes = [_vivid(rng) for _ in range(int(rng.integers(2, 4)))]
    height = 0.8 / len(stripes)
    shapes = [(_rect(-0.75, -0.9, -0.65, 1.0), (90, 90, 95))]  # pole, standing on its foot
    for k, color in enumerate(stripes):
        top = -0.85 + k * height
        shapes.append((_rect(-0.65, top, 0.8, top + height), color))
    return shapes


def _checker(rng):
    a, b = _vivid(rng), _vivid(rng)
    if np.abs(a - b).sum() < 150:
        b = 255.0 - a  # keep the two colours apart
    cells = int(rng.integers(3, 6))
    step = 1.6 / cells
    shapes = []
    for row in range(cells):
        for col in range(cells):
            x0, y0 = -0.8 + col * step, -0.8 + row * step
            shapes.append((_rect(x0, y0, x0 + step, y0 + step), a if (row + col) % 2 else b))
    return shapes


_OBJECTS = {"balloon": _balloon, "house": _house, "tree": _tree, "star": _star,
            "flag": _flag, "checker": _checker}


# ------------------------------------------------------------------ files
def _file_name(i: int) -> str:
    return f"img_{i:05d}.jpg"


def _truth_csv(names: list[str], labels: np.ndarray) -> str:
    lines = ["filename,label"] + [f"{n},{CLASSES[int(c)]}" for n, c in zip(names, labels)]
    return "\n".join(lines) + "\n"


def _marker(dest: Path) -> dict | None:
    try:
        info = json.loads((dest / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
