"""Decoding: every mode to RGB, EXIF orientation, and a short reason for every broken file."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sslstudio.data import decode
from sslstudio.data.decode import DecodeError, load_rgb, load_square


def _save(img: Image.Image, path: Path, **kw) -> Path:
    img.save(path, **kw)
    return path


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width×height (pixel data absent): what a bomb looks like."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grey
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


def test_every_mode_becomes_rgb_with_the_right_pixels(tmp_path):
    cases = {}
    cases["L.png"] = (Image.new("L", (4, 4), 77), (77, 77, 77))
    cases["1.png"] = (Image.new("1", (4, 4), 1), (255, 255, 255))
    cases["LA.png"] = (Image.new("LA", (4, 4), (10, 0)), (255, 255, 255))  # fully transparent
    cases["RGBA.png"] = (Image.new("RGBA", (4, 4), (200, 0, 0, 255)), (200, 0, 0))
    half = Image.new("RGBA", (4, 4), (0, 0, 0, 128))  # half-transparent black on white
    cases["half.png"] = (half, (127, 127, 127))
    pal = Image.new("P", (4, 4), 1)
    pal.putpalette([0, 255, 0] + [255, 0, 0] * 255)
    pal.info["transparency"] = 1  # index 1 (red) is transparent
    cases["P.png"] = (pal, (255, 255, 255))
    cases["CMYK.jpg"] = (Image.new("CMYK", (8, 8), (0, 255, 255, 0)), (255, 0, 0))  # red ink
    i16 = Image.fromarray(np.full((4, 4), 65535, np.uint16))
    cases["I16.png"] = (i16, (255, 255, 255))
    cases["F.tif"] = (Image.fromarray(np.full((4, 4), 0.5, np.float32)), (128, 128, 128))
    cases["RGB.bmp"] = (Image.new("RGB", (4, 4), (1, 2, 3)), (1, 2, 3))
    for name, (img, expected) in cases.items():
        path = _save(img, tmp_path / name, **({"quality": 100} if name.endswith(".jpg") else {}))
        out = load_rgb(path)
        assert out.mode == "RGB", name
        pixel = np.asarray(out)[1, 1].astype(int)
        assert np.abs(pixel - expected).max() <= 3, (name, pixel, expected)


def test_16_bit_grey_is_scaled_not_clipped(tmp_path):
    ramp = np.array([[0, 257 * 64, 257 * 128, 65535]], np.uint16)
    path = _save(Image.fromarray(ramp), tmp_path / "ramp16.png")
    assert Image.open(path).mode.startswith("I")  # really a 16-bit file
    grey = np.asarray(load_rgb(path))[0, :, 0]
    assert grey.tolist() == [0, 64, 128, 255]


def test_exif_orientation_is_applied(tmp_path):
    # Stored 40 wide × 20 high: left half red, right half blue.
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)
    stored[:, 20:] = (0, 0, 255)
    img = Image.fromarray(stored)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    path = _save(img, tmp_path / "rotated.jpg", exif=exif, quality=95)
    upright = np.asarray(load_rgb(path)).astype(int)
    assert upright.shape == (40, 20, 3)  # now portrait
    top, bottom = upright[5, 10], upright[35, 10]
    assert top[0] > 200 and top[2] < 60  # the left (red) half turned to the top
    assert bottom[2] > 200 and bottom[0] < 60


@pytest.mark.parametrize("kind, reason", [
    ("empty", "empty file"),
    ("text", "not an image"),
    ("truncated_jpeg", "truncated file"),
    ("truncated_png", "truncated file"),
])
def test_broken_files_give_a_short_reason_and_name_the_file(tmp_path, kind, reason):
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    if kind == "empty":
        path = tmp_path / "empty.png"
        path.write_bytes(b"")
    elif kind == "text":
        path = tmp_path / "notes.jpg"
        path.write_text("this is not a picture\n")
    else:
        suffix = ".jpg" if kind == "truncated_jpeg" else ".png"
        path = _save(noise, tmp_path / f"cut{suffix}")
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DecodeError) as info:
        load_square(path, 16)
    assert info.value.reason == reason
    assert path.name in str(info.value)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_decompression_bombs_are_refused_from_the_header(tmp_path):
    way_too_big = _png_header_only(tmp_path / "bomb.png", 30000, 30000)  # PIL's own guard
    with pytest.raises(DecodeError) as info:
        load_rgb(way_too_big)
    assert info.value.reason.startswith("too large")
    just_too_big = _png_header_only(tmp_path / "big.png", 15000, 15000)  # our guard
    with pytest.raises(DecodeError) as info:
        load_rgb(just_too_big)
    assert info.value.reason == "too large: 15000×15000 pixels"
    assert decode.check_header(_png_header_only(tmp_path / "ok.png", 300, 200)) == (300, 200)


def test_load_square_resizes_the_shorter_side_and_crops_the_centre(tmp_path):
    wide = np.zeros((30, 90, 3), np.uint8)
    wide[:, :30] = (255, 0, 0)
    wide[:, 30:60] = (0, 255, 0)
    wide[:, 60:] = (0, 0, 255)
    path = _save(Image.fromarray(wide), tmp_path / "wide.png")
    out = load_square(path, 12)
    assert out.shape == (12, 12, 3) and out.dtype == np.uint8
    assert (out[:, 2:10] == (0, 255, 0)).all()  # only the middle third survives


def test_jpeg_draft_decoding_stays_close_to_a_full_decode(tmp_path):
    y, x = np.mgrid[0:480, 0:640]
    smooth = np.stack([x * 255 // 640, y * 255 // 480, (x + y) * 255 // 1120], -1)
    path = _save(Image.fromarray(smooth.astype(np.uint8)), tmp_path / "big.jpg", quality=95)
    fast = load_square(path, 32).astype(int)
    full = Image.open(path).convert("RGB").resize((32, 32), Image.Resampling.BILINEAR,
                                                  box=(80, 0, 560, 480))
    assert np.abs(fast - np.asarray(full).astype(int)).mean() < 3
