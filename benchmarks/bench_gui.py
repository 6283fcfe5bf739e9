"""GUI speed: start-up to a visible window, and the gallery on 100,000 images.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_gui.py [--images 100000]

Prints a table:
* start-up: process launch → main window shown and painted (median of 3 runs);
* first paint: index ready (snapshot read from the store) → gallery painted;
* scrolling: a 5 ms heartbeat timer measures the longest event-loop stall while
  the gallery is scrolled slowly over the first few thousand images (thumbnails
  decode and fill the memory cache past its cap) and then end to end in pages;
* peak resident memory of the whole run (ru_maxrss).

The tiny image files are generated once under /tmp (not in the repository).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STARTUP_CHILD = r"""
import sys, time
t0 = time.perf_counter()
from sslstudio.gui.app import create_app
from sslstudio.gui.main_window import MainWindow
from PySide6.QtCore import QTimer
app = create_app()
w = MainWindow()
w.show()
def shown():
    w.repaint()
    print("VISIBLE", time.perf_counter() - t0, flush=True)
    app.quit()
QTimer.singleShot(0, shown)
app.exec()
"""


def measure_startup(runs: int = 3) -> tuple[float, float]:
    """(median seconds from process launch to a painted window, median in-process part)."""
    totals, inside = [], []
    env = dict(os.environ, SSLSTUDIO_HOME=tempfile.mkdtemp(prefix="sslstudio-bench-home-"))
    for _ in range(runs):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", STARTUP_CHILD], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
        total = time.perf_counter() - start
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("VISIBLE")), None)
        if line is None:
            raise RuntimeError(f"start-up child failed:\n{out.stderr}")
        totals.append(total)
        inside.append(float(line.split()[1]))
    return statistics.median(totals), statistics.median(inside)


def make_images(folder: Path, n: int) -> None:
    """n tiny JPEGs in 100 sub-folders (skipped when already there)."""
    marker = folder / f".complete-{n}"
    if marker.exists():
        return
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    colors = [(r, g, b) for r in (30, 120, 220) for g in (30, 120, 220) for b in (30, 120, 220)]
    print(f"writing {n} image files into {folder} (once)…", file=sys.stderr)
    for i in range(n):
        sub = folder / f"d{i % 100:02d}"
        if i < 100:
            sub.mkdir(exist_ok=True)
        Image.new("RGB", (24, 16), colors[i % len(colors)]).save(sub / f"img{i:06d}.jpg",
                                                                  quality=70)
    marker.write_text("ok")


def index_project(images: Path, project: Path):
    from sslstudio.project import ProjectStore

    if (project / "project.sqlite").exists():
        return ProjectStore.open(project), 0.0
    store = ProjectStore.create(project, images)
    start = time.perf_counter()
    try:
        from sslstudio.data.scan import scan_folder
        scan = scan_folder(images)
    except ImportError:   # before the scanner exists: the same shape, from os.scandir
        from types import SimpleNamespace

        from sslstudio.project.store import ImageEntry
        entries = []
        for sub in sorted(os.scandir(images), key=lambda e: e.name):
            if sub.is_dir():
                for f in os.scandir(sub.path):
                    st = f.stat()
                    entries.append(ImageEntry(f"{sub.name}/{f.name}", st.st_size, st.st_mtime_ns))
        scan = SimpleNamespace(root=images, images=entries, bad=[])
    store.sync_index(scan)
    return store, time.perf_counter() - start


def bench_gallery(n: int, workdir: Path) -> dict:
    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtWidgets import QApplication

    from sslstudio.gui.app import create_app
    from sslstudio.gui.context import AppContext
    from sslstudio.gui.pages.data_page import DataPage, read_snapshot

    images = workdir / f"images-{n}"
    make_images(images, n)
    store, scan_s = index_project(images, workdir / f"project-{n}")
    app = create_app()
    ctx = AppContext()
    ctx._store = store          # without set_store: the page must not start a rescan here
    page = DataPage(ctx)
    page.resize(1280, 800)
    page.body.setCurrentIndex(1)
    page.show()
    app.processEvents()
    from sslstudio.gui.widgets.gallery import loader_for
    page.model.set_loader(loader_for(ctx))

    t0 = time.perf_counter()
    snapshot = read_snapshot(store)
    t_read = time.perf_counter() - t0
    t1 = time.perf_counter()
    page.show_snapshot(snapshot)
    page.gallery.viewport().repaint()
    first_paint = time.perf_counter() - t1

    view = page.gallery
    bar = view.verticalScrollBar()
    gaps: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.nsecsElapsed()]

    def beat():
        now = clock.nsecsElapsed()
        gaps.append((now - last[0]) / 1e6)
        last[0] = now

    heartbeat = QTimer()
    heartbeat.setInterval(5)
    heartbeat.timeout.connect(beat)
    heartbeat.start()

    def pump(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.001)

    loader = page.model.loader
    # phase 1: slow scroll over the first images; thumbnails decode and fill the cache
    slow_start = time.perf_counter()
    per_row = max(1, view.viewport().width() // 132)
    slow_rows = min(n, 3000) // per_row
    for _ in range(max(1, slow_rows * 150 // max(1, view.viewport().height()))):
        bar.setValue(bar.value() + view.viewport().height())
        pump(0.06)
    slow_s = time.perf_counter() - slow_start
    slow_gaps = list(gaps)
    gaps.clear()
    last[0] = clock.nsecsElapsed()
    # phase 2: end to end, three pages per 16 ms frame
    fast_start = time.perf_counter()
    while bar.value() < bar.maximum():
        bar.setValue(bar.value() + 3 * view.viewport().height())
        pump(0.016)
    pump(0.5)
    fast_s = time.perf_counter() - fast_start
    heartbeat.stop()
    fast_gaps = list(gaps)
    result = {
        "images": n, "scan_s": scan_s, "snapshot_read_s": t_read, "first_paint_s": first_paint,
        "slow_scroll_s": slow_s, "slow_max_gap_ms": max(slow_gaps, default=0),
        "slow_p99_gap_ms": _p99(slow_gaps), "fast_scroll_s": fast_s,
        "fast_max_gap_ms": max(fast_gaps, default=0), "fast_p99_gap_ms": _p99(fast_gaps),
        "thumbnails_loaded": loader.loaded, "pixmaps_in_memory": len(loader._pixmaps),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    ctx.shutdown()
    QApplication.processEvents()
    return result


def _p99(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "sslstudio-bench-gui")
    parser.add_argument("--skip-startup", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("SSLSTUDIO_HOME", str(args.workdir / "home"))
    rows = []
    if not args.skip_startup:
        total, inside = measure_startup()
        rows += [("start-up to painted window (process launch)", f"{total:.2f} s", "< 2 s"),
                 ("  of which in Python after launch", f"{inside:.2f} s", "")]
    r = bench_gallery(args.images, args.workdir)
    rows += [
        ("images in the project", f"{r['images']:,}", ""),
        ("index: scan + sync (first run only)", f"{r['scan_s']:.2f} s", ""),
        ("index ready: read from store", f"{r['snapshot_read_s'] * 1000:.0f} ms", ""),
        ("first paint of the gallery", f"{r['first_paint_s'] * 1000:.0f} ms", "< 300 ms"),
        ("slow scroll (thumbnails decode): time", f"{r['slow_scroll_s']:.1f} s", ""),
        ("  max / p99 event-loop stall", f"{r['slow_max_gap_ms']:.0f} / "
                                         f"{r['slow_p99_gap_ms']:.0f} ms", ""),
        ("scroll end to end: time", f"{r['fast_scroll_s']:.1f} s", ""),
        ("  max / p99 event-loop stall", f"{r['fast_max_gap_ms']:.0f} / "
                                         f"{r['fast_p99_gap_ms']:.0f} ms", ""),
        ("thumbnails decoded or read", f"{r['thumbnails_loaded']:,}", ""),
        ("thumbnails held in memory (cap 2000)", f"{r['pixmaps_in_memory']:,}", ""),
        ("peak resident memory", f"{r['peak_rss_mb']:.0f} MB", "< 1024 MB"),
    ]
    width = max(len(name) for name, _, _ in rows)
    print(f"{'measure':<{width}}  {'result':>12}  target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>12}  {target}")


if __name__ == "__main__":
    main()
