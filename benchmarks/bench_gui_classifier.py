"""How long the Classifier page's fit takes, and how the window responds meanwhile.

The page builds a classifier on the built-in sample (10 labels per class, the
rest predicted) while a 5 ms QTimer heartbeat runs in the UI thread; the largest
gap between two heartbeats is the longest the window could not respond. Two ways
of running the fit, side by side in one run:

* ``app`` (what the page does): ``sslstudio classifier-worker`` in a child process
  at nice 10, with every core, for the fits that train a network; a thread for linear,
  knn and propagate, which only fit a head on the features (``process`` forces the
  child process for those too);
* ``thread`` (the previous design): the same job in a thread of the app, torch
  capped at cores − 1 so the window keeps a core.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_gui_classifier.py
        [--method selftrain] [--per-class 150] [--run PRETRAINED_RUN_DIR] [--size 32]

Without --run the backbone is a randomly initialised small_cnn: the time of a fit
hardly depends on the weights, its accuracy does (pass a real run to see that).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from host_share import CpuShare, describe  # noqa: E402  (benchmarks/, beside this file)


def fit_factory(mode: str):
    """What the page starts a fit with: its own choice ("app"), or one way forced."""
    from sslstudio.gui.classifier_process import (ClassifierProcess, ClassifierThread,
                                                  classifier_fit)
    from sslstudio.gui.workers import leave_a_core_for_the_window

    def make(job, jobs_dir, parent=None):
        if mode == "thread":     # the design before 2026-12-07: every fit in a capped thread
            leave_a_core_for_the_window()
            return ClassifierThread(job, parent=parent)
        if mode == "process":
            return ClassifierProcess(job, jobs_dir / Path(job.model_dir).name, parent=parent)
        return classifier_fit(job, jobs_dir, parent=parent)

    return make


def make_sample_project(tmp: Path, per_class: int):
    from test_gui_pretrain import make_project

    from sslstudio.data.sample import generate_sample_dataset, sample_truth

    root = generate_sample_dataset(tmp / "sample", n_per_class=per_class)
    truth = sample_truth(root)
    store, _ = make_project(tmp, (root, truth))
    return store, truth


def register_run(store, run: str | None, size: int) -> Path:
    """The pretrained run the fit starts from: ``run`` as given, or a random small_cnn."""
    import json

    import torch

    from sslstudio.models.backbones import create_backbone
    from sslstudio.models.io import save_backbone

    run_dir = store.runs_dir / "bench-run"
    run_dir.mkdir(parents=True)
    if run:
        for name in ("backbone.safetensors", "backbone.json"):
            (run_dir / name).write_bytes((Path(run) / name).read_bytes())
    else:
        torch.manual_seed(0)
        save_backbone(run_dir / "backbone", create_backbone("small_cnn", image_size=size),
                      {"name": "small_cnn", "image_size": size})
    config = json.loads((run_dir / "backbone.json").read_text())
    store.add_run("pretrain", run_dir, {"task": config.get("pretext_task", "none"),
                                        "backbone": config["name"],
                                        "image_size": config["image_size"]}, status="completed")
    return run_dir


def measure(mode: str, method: str, per_class: int, labels_per_class: int,
            run: str | None, size: int) -> dict:
    import numpy as np
    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtWidgets import QApplication
    from test_gui_pretrain import make_context

    from sslstudio.gui.pages import classifier_page

    app = QApplication.instance() or QApplication([])
    tmp = Path(tempfile.mkdtemp(prefix="bench-classifier-"))
    store, truth = make_sample_project(tmp, per_class)
    register_run(store, run, size)
    by_class: dict[str, list[str]] = {}
    for relpath, name in sorted(truth.items()):
        by_class.setdefault(name, []).append(relpath)
    rng = np.random.default_rng(0)
    store.set_labels({r: name for name, members in by_class.items()
                      for r in rng.permutation(members)[:labels_per_class]})
    app_choice, app_time_left = classifier_page.classifier_fit, classifier_page.TimeLeft
    classifier_page.classifier_fit = fit_factory(mode)
    # what the progress bar says as the fit goes: (seconds in, fraction done, time left shown)
    trace: list[tuple[float, float, float | None]] = []

    class TracedTimeLeft(app_time_left):
        def update(self, done_steps: float, total: float) -> float | None:
            left = super().update(done_steps, total)
            if total:
                trace.append((time.perf_counter() - started, done_steps / total, left))
            return left

    classifier_page.TimeLeft = TracedTimeLeft
    page = classifier_page.ClassifierPage(make_context(store))
    page.resize(1280, 800)
    page.show()
    page.set_method(method)
    gaps: list[float] = []
    clock = QElapsedTimer()
    heartbeat = QTimer()
    heartbeat.setInterval(5)
    heartbeat.timeout.connect(lambda: gaps.append(clock.restart()))
    done: list[bool] = []
    page.training_finished.connect(done.append)
    for _ in range(20):   # the page's first paint is not part of the fit
        app.processEvents()
    started = time.perf_counter()
    clock.start()
    heartbeat.start()
    with CpuShare() as share:
        if not page.train():
            raise SystemExit(f"the fit did not start: {page.status_label.text()}")
        while not done and time.perf_counter() - started < 3600:
            app.processEvents()
            time.sleep(0.001)
    heartbeat.stop()
    seconds = time.perf_counter() - started
    gaps = gaps[1:]  # the first interval includes the start itself
    check = page.sample_check()
    classifier_page.classifier_fit, classifier_page.TimeLeft = app_choice, app_time_left
    page.close()
    store.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return {"mode": mode, "method": method, "ok": bool(done and done[0]),
            "images": len(truth), "seconds": seconds, "stolen": share.stolen,
            "unlabelled_right": check[0] / check[1] if check else float("nan"),
            **time_left_errors(trace, seconds), "trace": trace,
            "max_gap_ms": max(gaps) if gaps else float("nan"),
            "p99_gap_ms": float(np.percentile(gaps, 99)) if gaps else float("nan")}


def time_left_errors(trace: list[tuple[float, float, float | None]], seconds: float) -> dict:
    """The shown time left against the truth: the first estimate's ratio, and the
    range of ratios from 30 s in until the last 10 s (ratios > 1 err long; the last
    seconds also save the model, which the bar does not count)."""
    ratios = [(t, left / (seconds - t)) for t, _, left in trace
              if left is not None and seconds - t > 10.0]
    later = [r for t, r in ratios if t >= 30.0]
    return {"first_eta_at_s": ratios[0][0] if ratios else float("nan"),
            "first_eta_ratio": ratios[0][1] if ratios else float("nan"),
            "eta_ratio_range": (min(later), max(later)) if later else (float("nan"),) * 2}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="selftrain")
    parser.add_argument("--per-class", type=int, default=150,
                        help="sample images per class (the app's sample has 400)")
    parser.add_argument("--labels", type=int, default=10, help="labels per class")
    parser.add_argument("--run", default=None, help="a pretraining run folder to start from")
    parser.add_argument("--size", type=int, default=32,
                        help="image size of the random backbone (the app's default: 32)")
    parser.add_argument("--mode", action="append", choices=("app", "process", "thread"),
                        help="how the fit runs: as the page chooses (a process, or a thread "
                             "for linear / knn / propagate), forced into a process, or in a "
                             "thread capped at cores - 1 (the old design); default app, "
                             "thread (the cap stays for the rest of the run, so last)")
    parser.add_argument("--json", type=Path, default=None,
                        help="write every row, with its progress trace, to this file")
    args = parser.parse_args()
    rows = [measure(mode, args.method, args.per_class, args.labels, args.run, args.size)
            for mode in (args.mode or ["app", "thread"])]
    print(f"{os.cpu_count()} CPUs, {args.method}, {rows[0]['images']} images, "
          f"{args.labels} labels per class, backbone {args.run or 'random small_cnn'}")
    print(f"{'mode':<9}{'ok':<5}{'fit s':>8}{'ratio':>7}{'unlabelled right':>18}"
          f"{'max gap ms':>12}{'p99 gap ms':>12}{'first ETA / truth':>19}"
          f"{'after 30 s':>14}{'CPU stolen by host':>20}")
    base = rows[0]["seconds"]
    for r in rows:
        print(f"{r['mode']:<9}{str(r['ok']):<5}{r['seconds']:8.1f}{r['seconds'] / base:7.2f}"
              f"{r['unlabelled_right']:18.1%}{r['max_gap_ms']:12.1f}{r['p99_gap_ms']:12.1f}"
              f"{r['first_eta_ratio']:9.2f} at {r['first_eta_at_s']:4.1f} s"
              f"{r['eta_ratio_range'][0]:8.2f}–{r['eta_ratio_range'][1]:.2f}"
              f"{describe(r['stolen']):>20}")
    if args.json:
        import json
        args.json.write_text(json.dumps(rows, indent=1))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
