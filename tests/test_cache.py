"""Decoded cache: rows equal load_square, only new/changed files are decoded, builds are atomic."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import write_toy_folder
from sslstudio.data import Cancelled, cache as cache_module
from sslstudio.data.cache import DecodedCache
from sslstudio.data.decode import load_square
from sslstudio.data.scan import scan_folder

SIZE = 16


@pytest.fixture
def counted_decodes(monkeypatch):
    """Count every image the cache decodes (in-process builds)."""
    calls: list[str] = []
    real = cache_module.load_square

    def counting(path, size):
        calls.append(Path(path).name)
        return real(path, size)
    monkeypatch.setattr(cache_module, "load_square", counting)
    return calls


def _build(root: Path, cache_dir: Path, **kw) -> DecodedCache:
    return DecodedCache.build(root, scan_folder(root).images, SIZE, cache_dir, workers=1, **kw)


def _assert_rows_match_files(cache: DecodedCache, root: Path) -> None:
    assert cache.images.shape == (len(cache), SIZE, SIZE, 3)
    for i, rel in enumerate(cache.relpaths):
        assert np.array_equal(cache.images[i], load_square(root / rel, SIZE)), rel


def test_rows_match_load_square_and_bad_files_are_listed(toy_folder, tmp_path):
    root, truth = toy_folder
    (root / "broken.jpg").write_text("not really")
    cache = _build(root, tmp_path / "cache")
    assert cache.relpaths == sorted(truth)
    _assert_rows_match_files(cache, root)
    assert [(b.relpath, b.reason) for b in cache.bad] == [("broken.jpg", "not an image")]
    assert cache.index_of("green/green_003.png") == cache.relpaths.index("green/green_003.png")
    with pytest.raises(ValueError):
        cache.images[0, 0, 0, 0] = 1  # read-only
    # The array file is a plain .npy, and reopening gives the same rows.
    (array_file,) = (tmp_path / "cache").glob("*.npy")
    assert np.array_equal(np.load(array_file), np.asarray(cache.images))
    again = DecodedCache.open(tmp_path / "cache", SIZE)
    assert again.relpaths == cache.relpaths and np.array_equal(again.images, cache.images)
    assert [b.relpath for b in again.bad] == ["broken.jpg"]


def test_second_build_decodes_nothing(toy_folder, tmp_path, counted_decodes):
    root, truth = toy_folder
    (root / "broken.jpg").write_text("not really")
    first = _build(root, tmp_path / "cache")
    assert len(counted_decodes) == len(truth) + 1
    counted_decodes.clear()
    second = _build(root, tmp_path / "cache")
    assert counted_decodes == []  # not even the known-bad file is tried again
    assert second.relpaths == first.relpaths and np.array_equal(second.images, first.images)
    assert [b.relpath for b in second.bad] == ["broken.jpg"]


def test_changed_added_and_removed_files_are_picked_up(toy_folder, tmp_path, counted_decodes):
    root, _ = toy_folder
    _build(root, tmp_path / "cache")
    counted_decodes.clear()
    changed = root / "red" / "red_002.png"
    Image.new("RGB", (32, 32), (1, 2, 3)).save(changed)
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    Image.new("RGB", (20, 40), (9, 200, 9)).save(root / "added.png")
    (root / "blue" / "blue_000.png").unlink()
    cache = _build(root, tmp_path / "cache")
    assert sorted(counted_decodes) == ["added.png", "red_002.png"]
    assert "blue/blue_000.png" not in cache.relpaths and "added.png" in cache.relpaths
    assert (cache.images[cache.index_of("red/red_002.png")] == (1, 2, 3)).all()
    _assert_rows_match_files(cache, root)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1  # the old array is gone


def test_cancelled_build_leaves_the_old_cache_whole(toy_folder, tmp_path):
    root, _ = toy_folder
    old = _build(root, tmp_path / "cache")
    old_rows = np.array(old.images)
    for path in list(root.rglob("*.png"))[:5]:
        os.utime(path, ns=(0, 10**9))  # "changed": must be decoded again
    checks = iter(range(10**6))
    with pytest.raises(Cancelled):
        _build(root, tmp_path / "cache", cancel=lambda: next(checks) >= 1)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()
                  if p.name.startswith(".")) == []  # no temp files left
    reopened = DecodedCache.open(tmp_path / "cache", SIZE)
    assert reopened.relpaths == old.relpaths and np.array_equal(reopened.images, old_rows)


def test_process_pool_gives_the_same_rows(tmp_path):
    root = tmp_path / "images"
    write_toy_folder(root, per_class=24, subfolders=False)  # 72 ≥ the pool threshold
    entries = scan_folder(root).images
    progress, children = [], []

    def report(done, total):
        progress.append((done, total))
        children.append(len(multiprocessing.active_children()))
    pooled = DecodedCache.build(root, entries, SIZE, tmp_path / "pooled", workers=2,
                                progress=report)
    assert max(children) >= 1  # the rows really came from worker processes
    serial = DecodedCache.build(root, entries, SIZE, tmp_path / "serial", workers=1)
    assert pooled.relpaths == serial.relpaths and len(pooled) == 72
    assert np.array_equal(pooled.images, serial.images)
    assert progress[-1] == (72, 72)


def test_main_without_a_file_decodes_in_this_process(tmp_path, monkeypatch):
    """A PyInstaller bundle's __main__ has no spec and no real file, so spawned workers could
    not re-import it: the build must stay in this process and still give every row."""
    import sys
    import types

    root = tmp_path / "images"
    write_toy_folder(root, per_class=24, subfolders=False)  # 72 ≥ the pool threshold
    frozen_main = types.ModuleType("__main__")
    frozen_main.__file__ = str(tmp_path / "bundle" / "sslstudio_launcher.py")  # not on disk
    frozen_main.__spec__ = None
    monkeypatch.setitem(sys.modules, "__main__", frozen_main)
    assert not cache_module._workers_can_start()
    children = []
    cache = DecodedCache.build(root, scan_folder(root).images, SIZE, tmp_path / "cache",
                               workers=2, progress=lambda d, t: children.append(
                                   len(multiprocessing.active_children())))
    assert max(children) == 0  # no worker process was started
    assert len(cache) == 72
    _assert_rows_match_files(cache, root)


UNGUARDED_SCRIPT = """
import sys
from sslstudio.data.cache import DecodedCache
from sslstudio.data.scan import scan_folder
root = sys.argv[1]
cache = DecodedCache.build(root, scan_folder(root).images, int(sys.argv[3]), sys.argv[2], workers=2)
print("built", len(cache))
"""


def test_a_script_without_a_main_guard_still_builds_and_is_told_why(tmp_path):
    """Worker processes re-run an unguarded script: their copies of the build ran silently and
    could delete the parent's array (FileNotFoundError, timing-dependent). Now each worker
    stops with the reason, and the parent decodes on its own and ends."""
    import subprocess
    import sys

    root = tmp_path / "images"
    write_toy_folder(root, per_class=24, subfolders=False)  # 72 ≥ the pool threshold
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED_SCRIPT, encoding="utf-8")
    done = subprocess.run([sys.executable, str(script), str(root), str(tmp_path / "cache"), str(SIZE)],
                          capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    assert "built 72" in done.stdout
    assert "if __name__ == \"__main__\":" in done.stderr
    _assert_rows_match_files(DecodedCache.open(tmp_path / "cache", SIZE), root)


def test_empty_folder_and_missing_cache(tmp_path):
    (tmp_path / "empty").mkdir()
    cache = _build(tmp_path / "empty", tmp_path / "cache")
    assert len(cache) == 0 and cache.images.shape == (0, SIZE, SIZE, 3)
    assert len(DecodedCache.open(tmp_path / "cache", SIZE)) == 0
    with pytest.raises(FileNotFoundError, match="no decoded cache of size 32"):
        DecodedCache.open(tmp_path / "cache", 32)
