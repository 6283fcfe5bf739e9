"""Project store timings on a synthetic 100,000-image index (no image files needed).

    python benchmarks/bench_store.py [--images 100000]

Prints one table: index sync, open (with its integrity quick check), single
label latency (each one committed with fsync), a bulk label write, reads.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sslstudio.project import ProjectStore  # noqa: E402


@dataclass(frozen=True)
class Entry:
    relpath: str
    size: int
    mtime_ns: int


@dataclass
class Scan:
    root: Path
    images: list
    bad: list


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=100_000)
    args = parser.parse_args()
    n = args.images
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "images").mkdir()
        entries = [Entry(f"d{i % 100:03d}/img_{i:07d}.jpg", 1000 + i, i) for i in range(n)]
        store = ProjectStore.create(tmp / "p", tmp / "images")
        seconds, _ = timed(lambda: store.sync_index(Scan(tmp / "images", entries, [])))
        rows.append((f"sync_index, {n} new images", f"{seconds * 1000:.0f} ms"))
        changed = entries[: n // 10] + [Entry(e.relpath, e.size + 1, e.mtime_ns)
                                          for e in entries[n // 10:]]
        seconds, _ = timed(lambda: store.sync_index(Scan(tmp / "images", changed, [])))
        rows.append((f"sync_index, {n} known, 90% changed", f"{seconds * 1000:.0f} ms"))
        relpaths = store.image_relpaths()

        latencies = []
        for i in range(300):
            seconds, _ = timed(lambda: store.set_label(relpaths[i * 7], f"class{i % 5}"))
            latencies.append(seconds * 1000)
        latencies.sort()
        rows.append(("set_label (committed), median", f"{statistics.median(latencies):.2f} ms"))
        rows.append(("set_label (committed), p95", f"{latencies[int(0.95 * len(latencies))]:.2f} ms"))

        bulk = {r: f"class{i % 5}" for i, r in enumerate(relpaths)}
        seconds, _ = timed(lambda: store.set_labels(bulk))
        rows.append((f"set_labels, {n} labels in one transaction", f"{seconds * 1000:.0f} ms"))
        seconds, _ = timed(store.labels)
        rows.append((f"labels(), {n} labels", f"{seconds * 1000:.0f} ms"))
        seconds, _ = timed(store.image_relpaths)
        rows.append(("image_relpaths()", f"{seconds * 1000:.0f} ms"))
        seconds, _ = timed(store.classes)
        rows.append(("classes() with counts", f"{seconds * 1000:.1f} ms"))
        store.close()
        seconds, reopened = timed(lambda: ProjectStore.open(tmp / "p"))
        rows.append(("open() incl. quick_check", f"{seconds * 1000:.0f} ms"))
        reopened.close()
        size_mb = (tmp / "p" / "project.sqlite").stat().st_size / 1e6
        rows.append(("database size", f"{size_mb:.1f} MB"))

    width = max(len(name) for name, _ in rows)
    print(f"{'operation':<{width}}  result")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
