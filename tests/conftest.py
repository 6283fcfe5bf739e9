"""Shared fixtures: small generated image folders (no data set is ever downloaded)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# How long a GUI test waits for a background fit before calling it hung. Generous: not a
# timing assertion, and a shared box can run a toy self-training fit 4x slower than an
# idle one (20 s idle, 85 s with the host taking a third of the CPU, 2026-12-07).
FIT_TIMEOUT_MS = 300_000

CLASS_COLORS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (40, 80, 220)}


def draw_toy_image(cls: str, rng: np.random.Generator, size: int = 32) -> Image.Image:
    """A noisy background with one class-coloured shape; the class decides colour and shape."""
    noise = rng.integers(0, 60, size=(size, size, 3), dtype=np.uint8)
    img = Image.fromarray(noise + 100, "RGB")
    draw = ImageDraw.Draw(img)
    cx, cy = rng.integers(size // 4, 3 * size // 4, size=2)
    r = int(rng.integers(size // 6, size // 3))
    box = [cx - r, cy - r, cx + r, cy + r]
    color = CLASS_COLORS[cls]
    if cls == "red":
        draw.ellipse(box, fill=color)
    elif cls == "green":
        draw.rectangle(box, fill=color)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=color)
    return img


def write_toy_folder(root: Path, per_class: int = 8, size: int = 32, seed: int = 0,
                     subfolders: bool = True) -> dict[str, str]:
    """Write a small labelled image folder; returns relpath → class."""
    rng = np.random.default_rng(seed)
    truth: dict[str, str] = {}
    for cls in CLASS_COLORS:
        for i in range(per_class):
            rel = f"{cls}/{cls}_{i:03d}.png" if subfolders else f"{cls}_{i:03d}.png"
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            draw_toy_image(cls, rng, size).save(path)
            truth[rel] = cls
    return truth


def denormals_flushed() -> bool:
    """True when this thread computes denormal floats (below 1.2e-38) as zero."""
    import torch

    return (torch.tensor([1e-39]) * 1.0).item() == 0.0


@pytest.fixture(scope="module")
def one_torch_thread():
    """For modules of tiny models (`pytestmark = pytest.mark.usefixtures("one_torch_thread")`):
    they train fastest on one thread; on a busy 2-core box extra threads spin (a selftrain
    fit in test_semi: 1.5 s on one thread, 4–13 s on two while other jobs run)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def toy_folder(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """3 classes × 8 PNG images of 32 px in class subfolders, with their true labels."""
    root = tmp_path / "images"
    truth = write_toy_folder(root)
    return root, truth


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test's per-user data (projects, settings) inside its own tmp dir."""
    monkeypatch.setenv("SSLSTUDIO_HOME", str(tmp_path / "sslstudio-home"))
