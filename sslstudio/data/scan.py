"""Index an image folder: every image file below it, with size and mtime, sorted.

The walk uses `os.scandir` (one directory read gives names and types) and the
entries' own `stat()`, so 100,000 files take well under a few seconds. Hidden
files and folders (name starting with ".") are skipped, symbolic links to
folders are followed once (a folder already visited is never entered again, so
link loops end), and nothing is ever written into the folder.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sslstudio.data import Cancelled
from sslstudio.data.formats import is_image_name

ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]

# How often (in files) the walk reports progress and polls cancel().
_REPORT_EVERY = 2000


@dataclass(frozen=True)
class ImageEntry:
    relpath: str  # relative to the scanned root, "/" separators
    size: int  # bytes
    mtime_ns: int


@dataclass(frozen=True)
class BadFile:
    relpath: str
    reason: str  # short, for people: "truncated file", "not an image", ...


@dataclass
class ScanResult:
    root: Path
    images: list[ImageEntry]
    bad: list[BadFile]
    seconds: float
    # Folders that could not be listed or were links already visited are noted here.
    skipped_dirs: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.images)

    @property
    def total_bytes(self) -> int:
        return sum(e.size for e in self.images)

    def by_extension(self) -> dict[str, int]:
        """Image count per lower-case extension (".jpg" and ".JPG" count together)."""
        counts = Counter(os.path.splitext(e.relpath)[1].lower() for e in self.images)
        return dict(sorted(counts.items()))


def scan_folder(root, *, check_headers: bool = False, progress: ProgressFn | None = None,
                cancel: CancelFn | None = None) -> ScanResult:
    """Find every image below `root`.

    Zero-byte files are reported as bad without opening them. With
    `check_headers=True` each file's header is read with PIL (no pixel decode)
    and files that are not images, are corrupt at the header, or are too large
    are moved to `bad`. `progress(done, total)` is called now and then (total is
    0 while the walk does not yet know it); `cancel()` returning True raises
    `Cancelled`. Raises NotADirectoryError / FileNotFoundError for a bad root.
    """
    started = time.perf_counter()
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"folder not found: {root}")
    if not root.is_dir():
        raise NotADirectoryError(f"not a folder: {root}")

    images: list[ImageEntry] = []
    bad: list[BadFile] = []
    skipped: list[str] = []
    _walk(root, images, bad, skipped, progress, cancel)
    images.sort(key=lambda e: e.relpath)

    if check_headers:
        images, header_bad = _check_headers(root, images, progress, cancel)
        bad.extend(header_bad)
    bad.sort(key=lambda b: b.relpath)
    return ScanResult(root=root, images=images, bad=bad,
                      seconds=time.perf_counter() - started, skipped_dirs=sorted(skipped))


def _walk(root: Path, images: list[ImageEntry], bad: list[BadFile], skipped: list[str],
          progress: ProgressFn | None, cancel: CancelFn | None) -> None:
    root_stat = os.stat(root)
    visited = {(root_stat.st_dev, root_stat.st_ino)}  # real folders entered so far
    pending = [(str(root), "")]  # (absolute dir path, relpath prefix ending in "/" or "")
    next_report = _REPORT_EVERY
    while pending:
        if cancel is not None and cancel():
            raise Cancelled("scan cancelled")
        dir_path, prefix = pending.pop()
        try:
            with os.scandir(dir_path) as it:
                entries = list(it)
        except OSError as exc:
            skipped.append(prefix.rstrip("/") or ".")
            if prefix:  # an unreadable subfolder is worth a line in the report
                bad.append(BadFile(prefix.rstrip("/"), f"folder cannot be read: {_os_reason(exc)}"))
            continue
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            try:
                if entry.is_dir():  # follows links; loops are caught by `visited`
                    st = entry.stat() if entry.is_symlink() else os.stat(entry.path)
                    key = (st.st_dev, st.st_ino)
                    if key in visited:
                        skipped.append(prefix + name)
                        continue
                    visited.add(key)
                    pending.append((entry.path, prefix + name + "/"))
                    continue
                if not is_image_name(name):
                    continue
                if not entry.is_file():
                    if entry.is_symlink():
                        bad.append(BadFile(prefix + name, "broken link"))
                    continue
                st = entry.stat()
            except OSError as exc:
                if is_image_name(name):
                    bad.append(BadFile(prefix + name, f"cannot read: {_os_reason(exc)}"))
                continue
            if st.st_size == 0:
                bad.append(BadFile(prefix + name, "empty file"))
                continue
            images.append(ImageEntry(prefix + name, st.st_size, st.st_mtime_ns))
        if progress is not None and len(images) >= next_report:
            next_report = len(images) + _REPORT_EVERY
            progress(len(images), 0)


def _check_headers(root: Path, images: list[ImageEntry], progress: ProgressFn | None,
                   cancel: CancelFn | None) -> tuple[list[ImageEntry], list[BadFile]]:
    from sslstudio.data.decode import DecodeError, check_header

    good: list[ImageEntry] = []
    bad: list[BadFile] = []
    total = len(images)
    base = str(root) + os.sep
    for i, entry in enumerate(images):
        if i % 256 == 0:
            if cancel is not None and cancel():
                raise Cancelled("scan cancelled")
            if progress is not None:
                progress(i, total)
        try:
            check_header(base + entry.relpath.replace("/", os.sep))
        except DecodeError as exc:
            bad.append(BadFile(entry.relpath, exc.reason))
            continue
        good.append(entry)
    if progress is not None:
        progress(total, total)
    return good, bad


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileNotFoundError):
        return "file vanished"
    return exc.strerror or str(exc)
