"""The decoded cache: every image once as S×S×3 uint8, in one memory-mapped .npy file.

Layout in `cache_dir` (inside the project, never in the image folder):

* `decoded-S.json`      manifest: root, rows (relpath, size, mtime_ns), bad files
                        with their keys and reasons, and the array's file name;
* `decoded-S-<id>.npy`  an ordinary .npy file (np.load works on it), N×S×S×3 uint8.

A file is identified by (relpath, size, mtime_ns): an unchanged file is copied
over from the previous array (never decoded again), a changed or new one is
decoded, a removed one drops out. Rows are in relpath order. A build writes a
new array under a fresh name and then swaps the manifest with `os.replace`, so
a crash or a cancel at any moment leaves the previous cache complete.
Decoded rows stream from the workers straight to the file: memory does not
grow with the number of images.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import struct
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

from sslstudio.data import Cancelled
from sslstudio.data.decode import DecodeError, load_square
from sslstudio.data.scan import BadFile, ImageEntry

MANIFEST_VERSION = 1
# Every array file starts with a .npy header of this fixed length, so the final
# row count can be written over it once the build knows it.
_HEADER_BYTES = 128
# Below this many images to decode, worker start-up costs more than it saves.
_MIN_FOR_POOL = 64
_CHUNK = 8

ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]


class DecodedCache:
    """Read-only view of a built cache: `images[i]` is the picture of `relpaths[i]`."""

    def __init__(self, cache_dir: Path, size: int, root: str, images: np.ndarray,
                 relpaths: list[str], bad: list[BadFile]) -> None:
        self.cache_dir = Path(cache_dir)
        self.size = int(size)
        self.root = root
        self.images = images
        self.relpaths = relpaths
        self.bad = bad
        self._index: dict[str, int] | None = None

    def __len__(self) -> int:
        return len(self.relpaths)

    def index_of(self, relpath: str) -> int:
        """Row of `relpath`; KeyError if it is not in the cache (missing or undecodable)."""
        if self._index is None:
            self._index = {r: i for i, r in enumerate(self.relpaths)}
        return self._index[relpath]

    # ------------------------------------------------------------------ open
    @classmethod
    def open(cls, cache_dir, size: int) -> "DecodedCache":
        """Reopen a built cache read-only; FileNotFoundError when there is none of that size."""
        cache_dir = Path(cache_dir)
        manifest = _read_manifest(cache_dir, size)
        if manifest is None:
            raise FileNotFoundError(f"no decoded cache of size {size} in {cache_dir}")
        return cls._from_manifest(cache_dir, manifest)

    @classmethod
    def _from_manifest(cls, cache_dir: Path, manifest: dict) -> "DecodedCache":
        size = manifest["size"]
        relpaths = [row[0] for row in manifest["rows"]]
        bad = [BadFile(b[0], b[3]) for b in manifest["bad"]]
        if relpaths:
            images = np.load(cache_dir / manifest["array"], mmap_mode="r")
            if images.shape != (len(relpaths), size, size, 3) or images.dtype != np.uint8:
                raise ValueError(f"decoded cache in {cache_dir} does not match its manifest "
                                 f"(array {images.shape}, manifest {len(relpaths)} rows)")
        else:  # mmap cannot map an empty file
            images = np.zeros((0, size, size, 3), np.uint8)
            images.flags.writeable = False
        return cls(cache_dir, size, manifest["root"], images, relpaths, bad)

    # ----------------------------------------------------------------- build
    @classmethod
    def build(cls, root, entries: Iterable[ImageEntry], size: int, cache_dir, *,
              workers: int | None = None, progress: ProgressFn | None = None,
              cancel: CancelFn | None = None) -> "DecodedCache":
        """Bring the cache for `entries` up to date, decoding only new or changed files.

        Files that cannot be decoded end up in `bad` (with their reason) and are
        not decoded again until they change. Raises `Cancelled` when `cancel()`
        says so; the previous cache is then left as it was.
        """
        _refuse_while_worker_imports_main()
        root = Path(root)
        size = int(size)
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        unique = {e.relpath: e for e in entries}
        entries = [unique[r] for r in sorted(unique)]
        root_text = str(root.resolve())

        old = _read_manifest(cache_dir, size)
        if old is not None and old["root"] != root_text:
            old = None  # a different image folder: nothing can be reused
        old_rows = {r[0]: (i, r[1], r[2]) for i, r in enumerate(old["rows"])} if old else {}
        old_bad = {b[0]: (b[1], b[2], b[3]) for b in old["bad"]} if old else {}

        # Plan: per entry, reuse an old row, keep a known bad verdict, or decode.
        plan: list[tuple[ImageEntry, str, object]] = []
        for e in entries:
            row = old_rows.get(e.relpath)
            if row is not None and row[1:] == (e.size, e.mtime_ns):
                plan.append((e, "reuse", row[0]))
                continue
            known = old_bad.get(e.relpath)
            if known is not None and known[:2] == (e.size, e.mtime_ns):
                plan.append((e, "bad", known[2]))
                continue
            plan.append((e, "decode", None))

        if old is not None and _unchanged(plan, old):
            if progress is not None:
                progress(len(entries), len(entries))
            return cls._from_manifest(cache_dir, old)
        return cls._write(root, root_text, plan, size, cache_dir, old, workers, progress, cancel)

    @classmethod
    def _write(cls, root: Path, root_text: str, plan, size: int, cache_dir: Path,
               old: dict | None, workers: int | None, progress: ProgressFn | None,
               cancel: CancelFn | None) -> "DecodedCache":
        row_bytes = size * size * 3
        capacity = sum(1 for _, action, _ in plan if action != "bad")
        to_decode = [str(root / e.relpath) for e, action, _ in plan if action == "decode"]
        token = uuid.uuid4().hex[:12]
        array_name = f"decoded-{size}-{token}.npy"
        tmp_array = cache_dir / f".{array_name}.tmp"
        rows: list[list] = []
        bad: list[list] = []
        total = len(plan)
        report_every = max(1, total // 200)
        old_file = open(cache_dir / old["array"], "rb") if old and old["rows"] else None
        decoded = _decode_stream(to_decode, size, workers)
        try:
            with open(tmp_array, "wb") as out:
                out.write(_npy_header((capacity, size, size, 3)))
                for done, (entry, action, info) in enumerate(plan, 1):
                    # Poll before every decode; copies are cheap, so poll those less often.
                    if cancel is not None and (action == "decode" or done % 256 == 0) \
                            and cancel():
                        raise Cancelled("cache build cancelled")
                    key = [entry.relpath, entry.size, entry.mtime_ns]
                    if action == "reuse":
                        old_file.seek(_HEADER_BYTES + int(info) * row_bytes)
                        pixels = old_file.read(row_bytes)
                        if len(pixels) != row_bytes:  # old array cut short: decode after all
                            pixels, reason = _decode_one(str(root / entry.relpath), size)
                        if pixels is None:
                            bad.append(key + [reason])
                        else:
                            out.write(pixels)
                            rows.append(key)
                    elif action == "bad":
                        bad.append(key + [info])
                    else:
                        pixels, reason = next(decoded)
                        if pixels is None:
                            bad.append(key + [reason])
                        else:
                            out.write(pixels)
                            rows.append(key)
                    if progress is not None and (done % report_every == 0 or done == total):
                        progress(done, total)
                out.seek(0)
                out.write(_npy_header((len(rows), size, size, 3)))
                out.truncate(_HEADER_BYTES + len(rows) * row_bytes)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            decoded.close()  # stops the worker pool
            _remove_quietly(tmp_array)
            raise
        finally:
            if old_file is not None:
                old_file.close()
        decoded.close()

        manifest = {"version": MANIFEST_VERSION, "size": size, "root": root_text,
                    "array": array_name, "created": time.time(), "rows": rows, "bad": bad}
        os.replace(tmp_array, cache_dir / array_name)
        tmp_manifest = cache_dir / f".{_manifest_name(size)}.{token}.tmp"
        tmp_manifest.write_text(json.dumps(manifest, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp_manifest, cache_dir / _manifest_name(size))  # the commit point
        _remove_stale_arrays(cache_dir, size, keep=array_name)
        return cls._from_manifest(cache_dir, manifest)


# ---------------------------------------------------------------- decoding
def _decode_one(path: str, size: int) -> tuple[bytes | None, str]:
    """One image → (row bytes, "") or (None, reason). Runs in the workers too."""
    try:
        return load_square(path, size).tobytes(), ""
    except DecodeError as exc:
        return None, exc.reason
    except Exception as exc:  # never let one odd file stop the build
        return None, f"cannot decode ({type(exc).__name__}: {exc})"


def default_workers() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


def _decode_stream(paths: list[str], size: int, workers: int | None) -> Iterator:
    """Decoded rows in the order of `paths`, from a process pool when it pays off."""
    workers = default_workers() if workers is None else max(1, int(workers))
    if workers == 1 or len(paths) < _MIN_FOR_POOL or not _workers_can_start():
        for path in paths:
            yield _decode_one(path, size)
        return
    chunks = [paths[i:i + _CHUNK] for i in range(0, len(paths), _CHUNK)]
    # forkserver/spawn, not fork: forking a process that runs threads (Qt, torch) can deadlock.
    method = "forkserver" if sys.platform.startswith("linux") else "spawn"
    pool = ProcessPoolExecutor(min(workers, len(chunks)),
                               mp_context=multiprocessing.get_context(method))
    in_flight: deque = deque()
    next_chunk = 0
    try:
        # A bounded window of chunks in flight keeps memory flat and results in order.
        while next_chunk < len(chunks) and len(in_flight) < 4 * workers:
            in_flight.append(pool.submit(_decode_many, chunks[next_chunk], size))
            next_chunk += 1
        done_chunks = 0
        while in_flight:
            try:
                results = in_flight.popleft().result()
            except BrokenProcessPool:  # workers could not start or died: finish here
                for chunk in chunks[done_chunks:]:
                    for path in chunk:
                        yield _decode_one(path, size)
                return
            done_chunks += 1
            if next_chunk < len(chunks):
                in_flight.append(pool.submit(_decode_many, chunks[next_chunk], size))
                next_chunk += 1
            yield from results
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _decode_many(paths: list[str], size: int) -> list[tuple[bytes | None, str]]:
    return [_decode_one(path, size) for path in paths]


def _refuse_while_worker_imports_main() -> None:
    """Stop a script without a main guard from building the cache again in every worker.

    A decode worker starts by re-running the user's script (forkserver and spawn import the
    main module). Unguarded, the script's call built the same cache in each worker at once,
    silently, and the copies could delete each other's arrays: the parent then failed with a
    missing file. Raising here makes each worker die at start-up with this message instead,
    and the parent, whose pool broke, decodes on its own and finishes.
    """
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise RuntimeError(
            "sslstudio was called while a worker process was importing your script. "
            "SSL Studio decodes images in worker processes, and Python starts each one by "
            "importing the main script: put the script's calls under "
            "'if __name__ == \"__main__\":'.")


def _workers_can_start() -> bool:
    """Spawned workers re-import the main module; that needs a real file or module name."""
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__spec__", None) is not None:
        return True
    main_file = getattr(main, "__file__", None)
    return bool(main_file) and os.path.isfile(main_file)


# ---------------------------------------------------------------- files
def _manifest_name(size: int) -> str:
    return f"decoded-{size}.json"


def _read_manifest(cache_dir: Path, size: int) -> dict | None:
    """The manifest if it exists, is ours, and its array file is there; else None."""
    try:
        manifest = json.loads((cache_dir / _manifest_name(size)).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (not isinstance(manifest, dict) or manifest.get("version") != MANIFEST_VERSION
            or manifest.get("size") != size):
        return None
    if manifest["rows"] and not (cache_dir / manifest["array"]).is_file():
        return None
    return manifest


def _unchanged(plan, old: dict) -> bool:
    """True when the plan would rewrite exactly the old cache (nothing to decode or drop)."""
    reused = [info for _, action, info in plan if action == "reuse"]
    if len(reused) != len(plan) - sum(1 for _, a, _ in plan if a == "bad"):
        return False  # something to decode
    return reused == list(range(len(old["rows"]))) and \
        sum(1 for _, a, _ in plan if a == "bad") == len(old["bad"])


def _npy_header(shape: tuple[int, ...]) -> bytes:
    """A .npy v1.0 header for a C-order uint8 array, padded to _HEADER_BYTES."""
    text = "{'descr': '|u1', 'fortran_order': False, 'shape': %r, }" % (tuple(shape),)
    body = _HEADER_BYTES - 10  # magic (6) + version (2) + length field (2)
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", body) + (text.ljust(body - 1) + "\n").encode()


def _remove_stale_arrays(cache_dir: Path, size: int, keep: str) -> None:
    """Arrays of earlier builds (and leftovers of killed ones) no manifest points to."""
    for path in cache_dir.glob(f"decoded-{size}-*.npy"):
        if path.name != keep:
            _remove_quietly(path)
    cutoff = time.time() - 24 * 3600  # a temp file a day old belongs to no running build
    for path in cache_dir.glob(f".decoded-{size}*.tmp"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:
            pass


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except OSError:  # e.g. still mapped by a reader on Windows; cleaned up next time
        pass
