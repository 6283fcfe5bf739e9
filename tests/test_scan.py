"""Scanning an image folder: what is found, what is skipped, what is reported, the CLI."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sslstudio.cli import main
from sslstudio.data import Cancelled
from sslstudio.data.scan import BadFile, scan_folder


def _image(path: Path, fmt: str | None = None, color=(200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), color).save(path, format=fmt)
    return path


def _snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path below root (hidden ones too) with its mode, size and mtime."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            out[os.path.relpath(os.path.join(dirpath, name), root)] = (st.st_mode, st.st_size,
                                                                       st.st_mtime_ns)
    return out


def test_finds_every_extension_in_any_case_recursively_and_sorted(tmp_path):
    names = {"a.jpg": "JPEG", "B.JPEG": "JPEG", "c.Png": "PNG", "sub/d.bmp": "BMP",
             "sub/deeper/e.GIF": "GIF", "sub/f.tif": "TIFF", "sub/g.TIFF": "TIFF",
             "h.webp": "WEBP"}
    for rel, fmt in names.items():
        _image(tmp_path / rel, fmt)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub" / "model.pt").write_bytes(b"\0" * 10)
    result = scan_folder(tmp_path, check_headers=True)
    relpaths = [e.relpath for e in result.images]
    assert relpaths == sorted(names)
    assert result.bad == []
    assert all(e.size == (tmp_path / e.relpath).stat().st_size for e in result.images)
    assert result.by_extension() == {".bmp": 1, ".gif": 1, ".jpeg": 1, ".jpg": 1, ".png": 1,
                                     ".tif": 1, ".tiff": 1, ".webp": 1}


def test_hidden_folders_and_files_are_skipped(tmp_path):
    _image(tmp_path / "seen.png")
    _image(tmp_path / ".thumbnails" / "hidden_dir.png")
    _image(tmp_path / "sub" / ".hidden.png")
    _image(tmp_path / "sub" / "seen_too.png")
    result = scan_folder(tmp_path)
    assert [e.relpath for e in result.images] == ["seen.png", "sub/seen_too.png"]


def test_symlink_loops_end_and_each_image_is_listed_once(tmp_path):
    _image(tmp_path / "a" / "one.png")
    _image(tmp_path / "b" / "two.png")
    os.symlink(tmp_path, tmp_path / "a" / "up")  # a/up → root → a → ...
    os.symlink(tmp_path / "a", tmp_path / "b" / "to_a")
    os.symlink(tmp_path / "b", tmp_path / "a" / "to_b")
    result = scan_folder(tmp_path)
    real = {os.path.realpath(tmp_path / e.relpath) for e in result.images}
    assert len(result.images) == 2 and len(real) == 2


def test_broken_and_empty_files_are_reported_not_fatal(tmp_path):
    _image(tmp_path / "good.png")
    (tmp_path / "zero.jpg").write_bytes(b"")
    (tmp_path / "letter.jpg").write_text("Dear reader, I am not a JPEG.")
    os.symlink(tmp_path / "gone.png", tmp_path / "dangling.png")
    quick = scan_folder(tmp_path)  # headers not read: only what stat() can tell
    assert [e.relpath for e in quick.images] == ["good.png", "letter.jpg"]
    assert quick.bad == [BadFile("dangling.png", "broken link"), BadFile("zero.jpg", "empty file")]
    checked = scan_folder(tmp_path, check_headers=True)
    assert [e.relpath for e in checked.images] == ["good.png"]
    assert BadFile("letter.jpg", "not an image") in checked.bad


def test_the_header_check_reports_files_cut_short_and_keeps_ones_with_trailing_bytes(tmp_path):
    # a cut-off copy keeps its header, so only its missing end marker gives it away
    noise = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    for name, fmt in [("photo.jpg", "JPEG"), ("chart.png", "PNG")]:
        whole = tmp_path / f"whole_{name}"
        Image.fromarray(noise).save(whole, format=fmt)
        data = whole.read_bytes()
        (tmp_path / f"cut_{name}").write_bytes(data[: len(data) * 2 // 3])
    # phones append metadata after a JPEG's end marker; such a file decodes fine
    extra = tmp_path / "with_trailer.jpg"
    extra.write_bytes((tmp_path / "whole_photo.jpg").read_bytes() + b"\0" * 8000)
    checked = scan_folder(tmp_path, check_headers=True)
    assert sorted(b.relpath for b in checked.bad) == ["cut_chart.png", "cut_photo.jpg"]
    assert {b.reason for b in checked.bad} == {"truncated file"}
    assert [e.relpath for e in checked.images] == ["whole_chart.png", "whole_photo.jpg",
                                                   "with_trailer.jpg"]


def test_read_only_folder_is_scanned_and_left_untouched(tmp_path):
    root = tmp_path / "photos"
    for i in range(3):
        _image(root / "sub" / f"{i}.jpg", "JPEG")
    (root / "bad.png").write_text("nope")
    for path in [*root.rglob("*"), root]:
        path.chmod(stat.S_IREAD | stat.S_IEXEC if path.is_dir() else stat.S_IREAD)
    before = _snapshot(root)
    try:
        result = scan_folder(root, check_headers=True)
        from sslstudio.data.cache import DecodedCache
        cache = DecodedCache.build(root, result.images, 16, tmp_path / "cache", workers=1)
        assert len(result.images) == 3 and len(cache) == 3
        assert _snapshot(root) == before
    finally:
        for path in [root, *root.rglob("*")]:
            path.chmod(stat.S_IRWXU)


def test_progress_and_cancel(tmp_path):
    for i in range(5):
        _image(tmp_path / f"{i}.png")
    seen = []
    scan_folder(tmp_path, check_headers=True, progress=lambda *report: seen.append(report))
    assert seen[-1] == (5, 5)
    with pytest.raises(Cancelled):
        scan_folder(tmp_path, cancel=lambda: True)


def test_missing_root_and_file_root_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="folder not found"):
        scan_folder(tmp_path / "nowhere")
    with pytest.raises(NotADirectoryError, match="not a folder"):
        scan_folder(_image(tmp_path / "x.png"))


def test_scan_cli_json_and_summary(tmp_path, capsys):
    _image(tmp_path / "x" / "a.png")
    _image(tmp_path / "b.JPG", "JPEG")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    assert main(["scan", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["count"] == 2
    assert report["by_extension"] == {".jpg": 1, ".png": 1}
    assert report["total_bytes"] == sum((tmp_path / r).stat().st_size for r in ("x/a.png", "b.JPG"))
    assert [b["relpath"] for b in report["bad"]] == ["broken.png"] and report["bad"][0]["reason"]
    assert set(report) == {"root", "count", "total_bytes", "by_extension", "bad", "seconds"}

    assert main(["scan", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "2 images" in text and "broken.png" in text

    assert main(["scan", str(tmp_path / "missing")]) == 2
    assert "folder not found" in capsys.readouterr().err
