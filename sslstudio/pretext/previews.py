"""Drawing helpers for task previews: image grids with captions, heat maps.

Everything returns H×W×3 uint8 arrays; captions use PIL's built-in font, so no
font files are needed and nothing here touches Qt.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

GOOD = (20, 140, 40)
BAD = (200, 30, 30)
TEXT = (20, 20, 20)
BACKGROUND = 255
MIN_CELL = 96   # small images are enlarged (nearest) so a person can see them
MAX_CELL = 192  # large ones are shrunk so a preview stays a glance


@dataclass
class Cell:
    image: np.ndarray          # h×w×3 uint8
    caption: str = ""
    color: tuple = TEXT


@lru_cache(maxsize=1)
def _font():
    return ImageFont.load_default()


def _line_height() -> int:
    box = _font().getbbox("Hg°")
    return int(box[3] - min(box[1], 0)) + 3


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """N×C×H×W (or C×H×W) floats in [0, 1] → N×H×W×3 (or H×W×3) uint8; 1 channel → gray."""
    x = images.detach().float().cpu()
    single = x.dim() == 3
    if single:
        x = x.unsqueeze(0)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    out = (x.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out[0] if single else out


def enlarge(image: np.ndarray, min_size: int = MIN_CELL, max_size: int = MAX_CELL) -> np.ndarray:
    """Display size: small images grow by an integer factor (crisp pixels) until the shorter
    side reaches `min_size`; large ones shrink so the longer side is at most `max_size`."""
    if max(image.shape[:2]) > max_size:
        return fit(image, max_size)
    factor = max(1, int(np.ceil(min_size / max(1, min(image.shape[:2])))))
    if factor == 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def fit(image: np.ndarray, longest: int) -> np.ndarray:
    """Resize so the longer side is `longest`, keeping the aspect ratio (nearest when enlarging)."""
    h, w = image.shape[:2]
    if max(h, w) == longest:
        return image
    scale = longest / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    method = Image.BILINEAR if scale < 1 else Image.NEAREST
    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize(size, method))


def grid(cells: list[Cell], columns: int, cell_size: int | None = None, gap: int = 4,
         caption_lines: int = 1) -> np.ndarray:
    """Lay out cells row by row with their captions under each image.

    cell_size: when given, every image is scaled so its longer side has this length;
    otherwise images keep their size. Each cell's box fits the largest image.
    """
    if not cells:
        return np.full((8, 8, 3), BACKGROUND, np.uint8)
    columns = max(1, min(columns, len(cells)))
    images = [c.image if cell_size is None else fit(c.image, cell_size) for c in cells]
    box_w = max(max(i.shape[1] for i in images), 48)
    box_h = max(i.shape[0] for i in images)
    line = _line_height()
    caption_h = line * caption_lines if any(c.caption for c in cells) else 0
    rows = (len(cells) + columns - 1) // columns
    height = gap + rows * (box_h + caption_h + gap)
    width = gap + columns * (box_w + gap)
    canvas = Image.new("RGB", (width, height), (BACKGROUND,) * 3)
    draw = ImageDraw.Draw(canvas)
    font = _font()
    for index, (cell, image) in enumerate(zip(cells, images)):
        r, c = divmod(index, columns)
        x = gap + c * (box_w + gap)
        y = gap + r * (box_h + caption_h + gap)
        canvas.paste(Image.fromarray(np.ascontiguousarray(image)), (x, y))
        for k, text in enumerate(cell.caption.split("\n")[:caption_lines]):
            draw.text((x + 1, y + box_h + 1 + k * line), _clip(text, box_w), fill=cell.color,
                      font=font)
    return np.asarray(canvas, dtype=np.uint8).copy()


def _clip(text: str, width: int) -> str:
    """`text` cut to fit `width` pixels; spaces doubled (the built-in font's are 2 px wide,
    so "ab error" read as "aberror")."""
    font = _font()
    text = text.replace(" ", "  ")
    while text and font.getlength(text) > width - 2:
        text = text[:-1]
    return text


def hstack(images: list[np.ndarray], gap: int = 2) -> np.ndarray:
    """Images of equal height side by side with white gaps."""
    height = max(i.shape[0] for i in images)
    parts = []
    for k, image in enumerate(images):
        if image.shape[0] != height:
            image = np.pad(image, ((0, height - image.shape[0]), (0, 0), (0, 0)),
                           constant_values=BACKGROUND)
        parts.append(image)
        if k < len(images) - 1:
            parts.append(np.full((height, gap, 3), BACKGROUND, np.uint8))
    return np.concatenate(parts, axis=1)


def heatmap(matrix: torch.Tensor | np.ndarray, low: float | None = None,
            high: float | None = None) -> np.ndarray:
    """A 2-D array as a blue-white-red picture (one pixel per entry; enlarge as needed)."""
    m = np.asarray(matrix.detach().float().cpu() if torch.is_tensor(matrix) else matrix,
                   dtype=np.float32)
    low = float(m.min()) if low is None else low
    high = float(m.max()) if high is None else high
    t = np.clip((m - low) / max(high - low, 1e-6), 0, 1)[..., None]
    blue, white, red = (np.array(v, np.float32) for v in ((40, 70, 190), (245, 245, 245), (200, 40, 40)))
    rgb = np.where(t < 0.5, blue + (white - blue) * (t * 2), white + (red - white) * (t * 2 - 1))
    return rgb.astype(np.uint8)


def titled(image: np.ndarray, title: str) -> np.ndarray:
    """A caption line above an image."""
    line = _line_height()
    canvas = Image.new("RGB", (image.shape[1], image.shape[0] + line + 2), (BACKGROUND,) * 3)
    canvas.paste(Image.fromarray(np.ascontiguousarray(image)), (0, line + 2))
    ImageDraw.Draw(canvas).text((2, 1), _clip(title, image.shape[1]), fill=TEXT, font=_font())
    return np.asarray(canvas, dtype=np.uint8).copy()
