"""Data-layer benchmark: folder scan speed and decoded-cache build rate, with peak memory.

    python benchmarks/bench_data.py                 # 100,000 files for the scan, 3,000 real images
    python benchmarks/bench_data.py --files 20000 --images 1000 --big-cache

Everything is written to a temporary folder under /tmp (removed afterwards).
The scan part writes the same small PNG under many names (the scan reads names
and stat() only, or headers with --check); the cache part uses distinct
procedural pictures (the sample dataset at 96 px, cached at 64 px). Each cache
build runs in a fresh child process so its peak RSS is its own (the decode
workers' own memory is not included; each holds one small chunk). Note: the files
were just written, so the scan runs on a warm OS file cache.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def peak_rss_mib() -> float:
    """This process's peak resident memory. VmHWM (Linux) starts afresh at exec, while
    getrusage's ru_maxrss keeps the parent's peak from before the fork."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def write_copies(root: Path, count: int, per_folder: int = 1000) -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (120, 60, 200)).save(buffer, format="PNG")
    data = buffer.getvalue()
    for i in range(count):
        folder = root / f"part{i // per_folder:04d}"
        if i % per_folder == 0:
            folder.mkdir(parents=True)
        with open(folder / f"img_{i:06d}.png", "wb") as f:
            f.write(data)


def time_scan(root: Path, check: bool, repeats: int) -> tuple[float, int]:
    from sslstudio.data.scan import scan_folder

    best, count = float("inf"), 0
    for _ in range(repeats):
        started = time.perf_counter()
        result = scan_folder(root, check_headers=check)
        best = min(best, time.perf_counter() - started)
        count = result.count
    return best, count


def end_marker_rows(root: Path, what: str) -> list[tuple[str, str, str]]:
    """The header check with and without its look at the file's end (which finds files cut
    short), best of 3 each, interleaved so both see the same warm file cache."""
    from sslstudio.data import decode

    markers = decode._END_MARKERS
    with_look, without = float("inf"), float("inf")
    for _ in range(3):
        decode._END_MARKERS = {}
        try:
            without = min(without, time_scan(root, check=True, repeats=1)[0])
        finally:
            decode._END_MARKERS = markers
        seconds, count = time_scan(root, check=True, repeats=1)
        with_look = min(with_look, seconds)
    return [(f"header check, {count:,} {what}, header only (before)", f"{without:.2f} s",
             f"{count / without:,.0f} files/s"),
            (f"header check, {count:,} {what}, + end marker", f"{with_look:.2f} s",
             f"{count / with_look:,.0f} files/s, {with_look / without:.2f}× the time")]


def cache_child(spec: dict) -> dict:
    """Runs in a fresh process: scan + build, report rate and peak memory."""
    from sslstudio.data.cache import DecodedCache
    from sslstudio.data.scan import scan_folder

    entries = scan_folder(spec["root"]).images
    started = time.perf_counter()
    cache = DecodedCache.build(spec["root"], entries, spec["size"], spec["cache_dir"],
                               workers=spec["workers"])
    seconds = time.perf_counter() - started
    return {"images": len(cache), "seconds": seconds,
            "rss_mib": peak_rss_mib()}


def run_child(spec: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000, help="files for the scan part")
    parser.add_argument("--images", type=int, default=3000, help="distinct images to cache")
    parser.add_argument("--size", type=int, default=64, help="cache image size")
    parser.add_argument("--big-cache", action="store_true",
                        help="also build a cache over all --files copies (memory vs. dataset size)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(cache_child(json.loads(args.child))))
        return

    from sslstudio.data.sample import CLASSES, generate_sample_dataset

    work = Path(tempfile.mkdtemp(prefix="sslstudio-bench-data-", dir="/tmp"))
    rows: list[tuple[str, str, str]] = []
    try:
        started = time.perf_counter()
        write_copies(work / "copies", args.files)
        print(f"wrote {args.files} files in {time.perf_counter() - started:.1f} s", flush=True)
        seconds, count = time_scan(work / "copies", check=False, repeats=3)
        rows.append((f"scan {count:,} files (stat only)", f"{seconds:.2f} s",
                     f"{count / seconds:,.0f} files/s"))
        seconds, count = time_scan(work / "copies", check=True, repeats=1)
        rows.append((f"scan {count:,} files + header check", f"{seconds:.2f} s",
                     f"{count / seconds:,.0f} files/s"))
        rows.extend(end_marker_rows(work / "copies", "PNG copies"))
        rows.append(("peak RSS after scans", f"{peak_rss_mib():.0f} MiB", ""))

        per_class = max(1, args.images // len(CLASSES))
        started = time.perf_counter()
        generate_sample_dataset(work / "real", n_per_class=per_class, size=96)
        print(f"wrote {per_class * len(CLASSES)} sample images in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        rows.extend(end_marker_rows(work / "real", "JPEG photos"))
        for workers in (1, 2):
            cache_dir = work / f"cache-w{workers}"
            first = run_child({"root": str(work / "real"), "size": args.size,
                               "cache_dir": str(cache_dir), "workers": workers})
            rows.append((f"cache build, {first['images']:,} images 96→{args.size} px, "
                         f"{workers} worker(s)", f"{first['seconds']:.2f} s",
                         f"{first['images'] / first['seconds']:,.0f} images/s, "
                         f"RSS {first['rss_mib']:.0f} MiB"))
        again = run_child({"root": str(work / "real"), "size": args.size,
                           "cache_dir": str(work / "cache-w2"), "workers": 2})
        rows.append(("cache rebuild, nothing changed", f"{again['seconds']:.3f} s",
                     f"RSS {again['rss_mib']:.0f} MiB"))
        if args.big_cache:
            big = run_child({"root": str(work / "copies"), "size": args.size,
                             "cache_dir": str(work / "cache-big"), "workers": 2})
            rows.append((f"cache build, {big['images']:,} copies 16→{args.size} px, 2 workers",
                         f"{big['seconds']:.1f} s",
                         f"{big['images'] / big['seconds']:,.0f} images/s, RSS "
                         f"{big['rss_mib']:.0f} MiB"))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    width = max(len(r[0]) for r in rows)
    print(f"\n{'measurement':{width}}  {'time':>9}  rate / memory")
    for name, value, extra in rows:
        print(f"{name:{width}}  {value:>9}  {extra}")
    print(f"\nmachine: {os.cpu_count()} CPU(s) visible, python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
