"""Thumbnails for the gallery: decoded in a thread pool, cached in memory and on disk.

* memory: an LRU of QPixmaps (MEMORY_CAP entries, about 130 MB at most), so a
  100,000-image project scrolled end to end stays well under 1 GiB;
* disk: PROJECT/thumbnails/ab/<key>.jpg where the key hashes relpath, size and
  mtime, so a changed file gets a new thumbnail; unreadable images leave a
  <key>.bad file holding the reason, so they are not decoded again;
* requests: the view names the rows it shows (plus a little look-ahead) and the
  new list replaces the old one, so a fast scroll never leaves a backlog of
  thumbnails nobody sees; at most two tasks per thread are queued at a time;
* threads: pool threads run PIL and file I/O only and hand back plain bytes
  through a queue that a UI-thread timer drains (no Qt object crosses threads).
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QImage, QPixmap

THUMB_SIZE = 128
MEMORY_CAP = 2000
DISPATCH_MS = 10


def thumbnail_key(relpath: str, size: int, mtime_ns: int) -> str:
    return hashlib.sha1(f"{relpath}\0{size}\0{mtime_ns}".encode()).hexdigest()[:24]


def key_map(relpaths, sizes, mtimes) -> dict[str, tuple[int, int]]:
    return {r: (int(s), int(m)) for r, s, m in zip(relpaths, sizes, mtimes)}


def _decode_thumbnail(path: Path, box: int):
    """PIL image no larger than box×box (RGB); raises an exception with a reason if unreadable."""
    try:
        from sslstudio.data.decode import load_rgb
    except ImportError:  # the decode module is written in parallel; same behaviour meanwhile
        load_rgb = None
    if load_rgb is not None:
        image = load_rgb(path)
    else:
        from PIL import Image, ImageOps

        with Image.open(path) as raw:
            raw.draft("RGB", (box * 2, box * 2))
            image = ImageOps.exif_transpose(raw).convert("RGB")
    image.thumbnail((box, box))
    return image


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "reason", "") or exc) or type(exc).__name__


def _write_atomic(path: Path, writer) -> None:
    """Write through a temporary name so a crash never leaves half a thumbnail."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{threading.get_ident()}.tmp{path.suffix}")
        writer(tmp)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only project only loses its disk cache


def make_thumbnail(source: Path, cache_file: Path, box: int) -> tuple[bytes, int, int, str]:
    """(RGB bytes, width, height, "") or (b"", 0, 0, reason). Runs in a pool thread.

    Only PIL and the file system here: no Qt object is touched off the UI thread.
    """
    from PIL import Image

    bad_file = cache_file.with_suffix(".bad")
    try:
        if cache_file.is_file():
            try:
                with Image.open(cache_file) as cached:
                    image = cached.convert("RGB")
                return image.tobytes(), image.width, image.height, ""
            except OSError:
                pass  # a damaged cache file: decode the source again
        if bad_file.is_file():
            return b"", 0, 0, bad_file.read_text("utf-8")
        image = _decode_thumbnail(source, box)
        _write_atomic(cache_file, lambda tmp: image.save(tmp, "JPEG", quality=85))
        return image.tobytes(), image.width, image.height, ""
    except Exception as exc:  # noqa: BLE001 - any failure is a broken thumbnail, not a crash
        reason = _reason(exc)
        if source.exists():   # a vanished file is not "broken"; the next scan will tell
            _write_atomic(bad_file, lambda tmp: tmp.write_text(reason, "utf-8"))
        return b"", 0, 0, reason


class ThumbnailLoader(QObject):
    """One per open project; every gallery of that project shares it."""

    ready = Signal(str)          # relpath whose thumbnail (or broken state) is now known

    def __init__(self, image_root: Path, cache_dir: Path, *, box: int = THUMB_SIZE,
                 memory_cap: int = MEMORY_CAP, threads: int | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.image_root, self.cache_dir, self.box = Path(image_root), Path(cache_dir), box
        self.memory_cap = memory_cap
        self._pixmaps: OrderedDict[str, QPixmap] = OrderedDict()
        self.broken: dict[str, str] = {}          # relpath → reason
        self._keys: dict[str, tuple[int, int]] = {}
        self._wanted: list[str] = []
        self._in_flight: set[str] = set()
        self._closed = False     # after shutdown the pool takes no work; views may still ask
        self.threads = threads or max(1, min(4, (os.cpu_count() or 2)))
        self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="thumbnails")
        self._results: queue.SimpleQueue = queue.SimpleQueue()
        self._timer = QTimer(self)
        self._timer.setInterval(DISPATCH_MS)
        self._timer.timeout.connect(self._dispatch)
        self.loaded = 0          # thumbnails delivered (for tests and benchmarks)

    # ------------------------------------------------------------------ index
    def set_keys(self, relpaths, sizes, mtimes) -> None:
        """Size and mtime of each image, for the disk cache key."""
        self.set_key_map(key_map(relpaths, sizes, mtimes))

    def set_key_map(self, keys: dict[str, tuple[int, int]]) -> None:
        """relpath → (size, mtime_ns); build it with key_map() off the UI thread for big sets."""
        self._keys = keys

    @property
    def has_keys(self) -> bool:
        return bool(self._keys)

    def cache_file(self, relpath: str) -> Path:
        size, mtime = self._keys.get(relpath, (0, 0))
        key = thumbnail_key(relpath, size, mtime)
        return self.cache_dir / key[:2] / f"{key}.jpg"

    # ------------------------------------------------------------------ UI-thread API
    def pixmap(self, relpath: str) -> QPixmap | None:
        """The thumbnail if it is in memory (painting never triggers decoding; `want` does)."""
        pixmap = self._pixmaps.get(relpath)
        if pixmap is not None:
            self._pixmaps.move_to_end(relpath)
        return pixmap

    def want(self, relpaths) -> None:
        """The thumbnails the view needs now, most urgent first; replaces the previous wish list."""
        if self._closed:
            return
        self._wanted = [r for r in relpaths
                        if r not in self._pixmaps and r not in self.broken
                        and r not in self._in_flight]
        self._wanted.reverse()           # pop() from the end serves the most urgent first
        if (self._wanted or self._in_flight) and not self._timer.isActive():
            self._timer.start()

    def clear_memory(self) -> None:
        self._pixmaps.clear()

    def shutdown(self) -> None:
        self._closed = True
        self._timer.stop()
        self._wanted = []
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _work(self, relpath: str, source: Path, cache_file: Path) -> None:
        """Pool thread: make the thumbnail, leave the result for the UI thread's timer."""
        self._results.put((relpath, *make_thumbnail(source, cache_file, self.box)))

    def _dispatch(self) -> None:
        """UI thread, every few ms while there is work: collect results, start new tasks."""
        if self._closed:            # a tick already queued when shutdown ran
            self._timer.stop()
            return
        self._collect()
        capacity = self.threads * 2 - len(self._in_flight)
        while capacity > 0 and self._wanted:
            relpath = self._wanted.pop()
            if relpath in self._in_flight or relpath in self._pixmaps:
                continue
            self._in_flight.add(relpath)
            self.pool.submit(self._work, relpath, self.image_root / relpath,
                             self.cache_file(relpath))
            capacity -= 1
        if not self._wanted and not self._in_flight:
            self._timer.stop()

    def _collect(self, budget_s: float = 0.008) -> None:
        # A time budget keeps one tick short even when many results arrived at once.
        deadline = time.perf_counter() + budget_s
        while time.perf_counter() < deadline:
            try:
                relpath, data, width, height, reason = self._results.get_nowait()
            except queue.Empty:
                return
            self._in_flight.discard(relpath)
            if not data:
                self.broken[relpath] = reason or "unreadable"
            else:
                image = QImage(data, width, height, 3 * width, QImage.Format.Format_RGB888)
                self._pixmaps[relpath] = QPixmap.fromImage(image)
                while len(self._pixmaps) > self.memory_cap:
                    self._pixmaps.popitem(last=False)
            self.loaded += 1
            self.ready.emit(relpath)
