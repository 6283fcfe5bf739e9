"""Pretrain page and its widgets: live curves, following a run folder, real runs from the page."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import pytestqt  # noqa: F401 - a declared test dependency: missing means failure, not a skip


# ---------------------------------------------------------------------------- shared helpers
def make_project(tmp_path: Path, toy_folder):
    """A real ProjectStore on the toy folder, scanned and indexed (no labels yet)."""
    from sslstudio.data.scan import scan_folder
    from sslstudio.project import ProjectStore

    root, truth = toy_folder
    store = ProjectStore.create(tmp_path / "project", root)
    store.sync_index(scan_folder(root))
    return store, truth


def make_context(store):
    """The app's real context with the project open."""
    from sslstudio.gui.context import AppContext

    ctx = AppContext()
    for name in ("set_store", "open_store", "set_project"):
        method = getattr(ctx, name, None)
        if callable(method):
            method(store)
            return ctx
    ctx.store = store
    ctx.project_changed.emit()
    return ctx


def fast_settings(page, task: str = "rotation", steps_epochs: int = 2) -> None:
    """Tiny, quick settings for a run on the 24-image toy folder."""
    page.select_task(task)
    page.backbone.setCurrentText("small_cnn")
    page.image_size.setValue(32)
    page.batch_size.setValue(8)
    page.budget_kind.setCurrentText("epochs")
    page.budget_value.setValue(steps_epochs)
    page.preview_every.setValue(2)
    index = page.device.findData("cpu")
    if index >= 0:
        page.device.setCurrentIndex(index)


# ---------------------------------------------------------------------------- widgets
def step_event(step: int, loss: float) -> dict:
    return {"kind": "step", "step": step, "time": float(step), "loss": loss,
            "metrics": {"accuracy": min(1.0, step / 100)}, "lr": 1e-3, "images_per_s": 500.0,
            "eta_s": 100 - step, "epoch": 0, "memory_mb": 120.0}


def test_plots_record_every_event_but_redraw_at_a_bounded_rate(qtbot):
    from sslstudio.gui.widgets.plots import TrainingPlots, smooth

    plots = TrainingPlots(max_fps=10)
    qtbot.addWidget(plots)
    plots.clear()
    before = plots.redraws
    for step in range(2000):
        plots.add_event(step_event(step, 2.0 / (1 + step)))
    assert plots.redraws == before  # adding events never redraws by itself
    qtbot.waitUntil(lambda: plots.raw_loss.getData()[0] is not None
                    and len(plots.raw_loss.getData()[0]) == 2000, timeout=2000)
    assert plots.redraws - before <= 3
    # the side plots catch up one per tick, and then the redraws stop
    def points(curve) -> int:
        x = curve.getData()[0]
        return 0 if x is None else len(x)

    qtbot.waitUntil(lambda: points(plots.lr_curve) == points(plots.memory_curve) == 2000,
                    timeout=3000)
    qtbot.waitUntil(lambda: not plots._dirty, timeout=3000)
    settled = plots.redraws
    assert settled - before <= 2 * len(plots.SIDE_PLOTS) + 1
    qtbot.wait(400)
    assert plots.redraws == settled  # nothing new: no more repaints
    x, y = plots.smooth_loss.getData()
    assert y[-1] < y[10]  # the smoothed loss follows the decreasing raw loss
    assert "step 1999" in plots.summary.text() and "ETA" in plots.eta.text()
    s = smooth(__import__("numpy").array([1.0, 1.0, 1.0]))
    assert abs(s[-1] - 1.0) < 1e-9  # bias-corrected: a constant stays constant


def test_an_ended_run_shows_its_status_not_a_stale_eta(qtbot):
    from sslstudio.gui.widgets.plots import TrainingPlots

    plots = TrainingPlots(max_fps=50)
    qtbot.addWidget(plots)
    events = [step_event(step, 1.0 / (1 + step)) for step in range(50)]
    plots.set_events(events + [{"kind": "end", "status": "stopped", "message": "by you"}])
    qtbot.wait(200)   # the side plots catch up over later ticks, which rewrite the labels
    assert "step 49" in plots.summary.text()
    assert plots.eta.text() == "stopped: by you"
    plots.set_events(events)   # still running: the estimate again
    qtbot.wait(100)
    assert plots.eta.text().startswith("ETA")


def test_a_finished_run_shows_its_whole_loss_at_once(qtbot):
    """The end draws the loss even when the last live tick drew it and a side plot is due."""
    from sslstudio.gui.widgets.plots import TrainingPlots

    plots = TrainingPlots(max_fps=0.1)   # no timer tick during the test
    qtbot.addWidget(plots)
    for step in range(6):
        plots.add_event(step_event(step, 1.0 / (1 + step)))
        plots._redraw_if_dirty()           # a live tick: loss and side plots take turns
    plots.add_event(step_event(6, 0.1))
    plots.mark_finished("completed")
    assert len(plots.raw_loss.getData()[0]) == plots.curves.points == 7


def test_the_run_summary_fits_beside_its_status_in_a_narrow_window(qtbot):
    from PySide6.QtGui import QFontMetrics

    from sslstudio.gui.widgets.plots import TrainingPlots

    plots = TrainingPlots(max_fps=50)
    qtbot.addWidget(plots)
    quality = {"kind": "quality", "step": 49, "time": 49.0, "knn_accuracy": 0.93,
               "effective_rank": 80.8, "feature_dim": 256}
    plots.set_events([step_event(step, 1.0 / (1 + step)) for step in range(50)] + [quality]
                     + [{"kind": "end", "status": "completed"}])
    qtbot.waitUntil(lambda: "rank 81/256" in plots.summary.text(), timeout=2000)
    metrics = QFontMetrics(plots.summary.font())
    widest = max(metrics.horizontalAdvance(line) for line in plots.summary.text().split("\n"))
    status = metrics.horizontalAdvance(plots.eta.text())
    # the page gives the plots about 640 px at 1280×800; every figure must show there
    assert widest + status + 40 <= 640, (widest, status)
    assert "kNN 93%" in plots.summary.text() and "step 49" in plots.summary.text()


def test_a_single_effective_rank_point_is_drawn_on_an_axis_from_step_zero(qtbot):
    """A run whose log holds one quality check (a short or copied run) used to get an x
    axis of 1499.8–1500.2; it starts at step 0, and more points bring auto-range back."""
    from sslstudio.gui.widgets.plots import TrainingPlots

    plots = TrainingPlots(max_fps=50)
    qtbot.addWidget(plots)
    plots.show()
    x_range = plots.rank_plot.getViewBox().viewRange
    quality = {"kind": "quality", "step": 1500, "time": 60.0, "effective_rank": 80.8}
    plots.set_events([step_event(1500, 0.5), quality])
    qtbot.wait(50)
    low, high = x_range()[0]
    assert low <= 0 and high >= 1500, (low, high)
    plots.set_events([step_event(1500, 0.5), quality, dict(quality, step=3000),
                      dict(quality, step=4500)])
    qtbot.waitUntil(lambda: 1000 < x_range()[0][0] < 1500 and 4500 <= x_range()[0][1] < 5000,
                    timeout=2000)


def test_run_follower_tails_a_growing_metrics_file(qtbot, tmp_path):
    from sslstudio.gui.run_bridge import RunFollower

    run = tmp_path / "run"
    (run / "previews").mkdir(parents=True)
    log = run / "metrics.jsonl"
    log.write_text(json.dumps({"kind": "start", "step": 0, "time": 0}) + "\n")
    follower = RunFollower(run, interval_ms=20)
    seen: list[dict] = []
    follower.event.connect(seen.append)
    follower.start()
    assert [e["kind"] for e in seen] == ["start"]
    with open(log, "a") as handle:  # a line written in two halves is read once, whole
        text = json.dumps(step_event(1, 0.5))
        handle.write(text[:10])
        handle.flush()
        qtbot.wait(60)
        assert len(seen) == 1
        handle.write(text[10:] + "\n")
        handle.write(json.dumps({"kind": "preview", "step": 1, "time": 1,
                                 "images": [{"title": "t", "path": "previews/p.png"}]}) + "\n")
    qtbot.waitUntil(lambda: len(seen) == 3, timeout=2000)
    assert seen[1]["loss"] == 0.5
    assert Path(seen[2]["images"][0]["path"]).is_absolute()  # resolved against the run folder
    with qtbot.waitSignal(follower.finished, timeout=2000) as blocker:
        with open(log, "a") as handle:
            handle.write(json.dumps({"kind": "end", "step": 1, "time": 2,
                                     "status": "completed"}) + "\n")
    assert blocker.args == ["completed"]
    assert not follower.is_following()


# ---------------------------------------------------------------------------- the page, real runs
@pytest.fixture
def project(tmp_path, toy_folder):
    store, truth = make_project(tmp_path, toy_folder)
    yield store, truth
    store.close()


# Generous: the run is a niced process, and on a loaded 2-core box it can wait a minute
# for a CPU before its first step. waitUntil returns as soon as the run ends.
def wait_for_end(qtbot, page, timeout_ms: int = 180_000) -> str:
    qtbot.waitUntil(lambda: page.last_status is not None and not page.is_running(),
                    timeout=timeout_ms)
    return page.last_status


def test_rotation_run_from_the_page_plots_and_previews(qtbot, project):
    from sslstudio.gui.pages.inspect_page import InspectPage
    from sslstudio.gui.pages.pretrain_page import PretrainPage

    store, _ = project
    ctx = make_context(store)
    page, inspect = PretrainPage(ctx), InspectPage(ctx)
    qtbot.addWidget(page)
    qtbot.addWidget(inspect)
    fast_settings(page, "rotation", 2)
    assert page.start_run()
    assert page.is_running() and not page.start_button.isEnabled()
    assert wait_for_end(qtbot, page) == "completed", page.last_message
    qtbot.waitUntil(lambda: page.plots.raw_loss.getData()[0] is not None, timeout=2000)
    assert page.plots.curves.points >= 2
    assert len(page.plots.raw_loss.getData()[0]) == page.plots.curves.points
    # previews from the run reached the Inspect page, as real pictures
    assert inspect.previews.sets and inspect.previews.shown_count() >= 1
    # the run is registered, with its final figures, and left a backbone
    run = store.runs("pretrain")[-1]
    assert run["status"] == "completed" and run["summary"].get("loss") is not None
    assert (Path(run["path"]) / "backbone.safetensors").is_file()
    assert page.run_table.rowCount() == 1 and page.run_table.item(0, 3).text() == "completed"
    assert page.start_button.isEnabled()


def start_long_run(qtbot, project):
    """A page running a rotation run far longer than the test; returns (page, store, steps)."""
    from sslstudio.gui.pages.pretrain_page import PretrainPage

    store, _ = project
    page = PretrainPage(make_context(store))
    qtbot.addWidget(page)
    fast_settings(page, "rotation", 500)
    steps: list[dict] = []
    page.hub.event.connect(lambda e: e.get("kind") == "step" and steps.append(e))
    assert page.start_run()
    qtbot.waitUntil(lambda: len(steps) >= 2, timeout=180_000)
    return page, store, steps


def wait_until_quiet(qtbot, events: list, *, quiet_ms: int, timeout_ms: int) -> None:
    """Wait until `events` has not grown for quiet_ms; fail after timeout_ms."""
    waited, seen, still = 0, len(events), 0
    while still < quiet_ms:
        assert waited < timeout_ms, f"events kept arriving for {timeout_ms} ms"
        qtbot.wait(250)
        waited += 250
        still = still + 250 if len(events) == seen else 0
        seen = len(events)


def test_stop_ends_the_run_as_stopped(qtbot, project):
    page, store, steps = start_long_run(qtbot, project)
    page.pause_run()
    assert page.resume_button.isEnabled()
    # The step in flight when the pause came may still arrive, late on a loaded machine;
    # after that the steps must stop (they never go quiet if the pause is ignored). The
    # quiet spell outlasts three of the slowest steps seen after the first (8 images
    # each): on a busy box one step has taken over 1.5 s.
    rates = [float(e["images_per_s"]) for e in steps[1:] if e.get("images_per_s")]
    quiet_ms = max(1500, int(3 * 1000 * 8 / max(0.5, min(rates, default=5.0))))
    wait_until_quiet(qtbot, steps, quiet_ms=quiet_ms, timeout_ms=30_000 + quiet_ms)
    paused_at = len(steps)
    qtbot.wait(quiet_ms)
    assert len(steps) == paused_at  # paused means no step
    page.resume_run()
    qtbot.waitUntil(lambda: len(steps) > paused_at, timeout=60_000)
    page.stop_run()
    assert wait_for_end(qtbot, page, 30_000) == "stopped"
    assert store.runs("pretrain")[-1]["status"] == "stopped"
    assert page.plots.curves.points < 500 * 3  # it did not run the whole budget


def assert_event_loop_runs(qtbot) -> None:
    from PySide6.QtCore import QTimer

    ticks: list[int] = []
    QTimer.singleShot(10, lambda: ticks.append(1))
    qtbot.waitUntil(lambda: ticks == [1], timeout=1000)


def test_a_failing_run_shows_the_engines_reason_and_advice(qtbot, tmp_path):
    """Colorization on grayscale images fails inside the worker process; the page says why."""
    from PIL import Image

    from sslstudio.gui.pages.pretrain_page import PretrainPage

    root = tmp_path / "gray"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, (32, 32), dtype=np.uint8), "L").save(
            root / f"g{i}.png")
    store, _ = make_project(tmp_path, (root, None))
    page = PretrainPage(make_context(store))
    qtbot.addWidget(page)
    fast_settings(page, "colorization")
    assert page.start_run()
    assert wait_for_end(qtbot, page, 60_000) == "failed"
    banner = page.error_banner.text()
    assert not page.error_banner.isHidden()
    assert "colour" in banner and "choose another task" in banner, banner
    assert store.runs("pretrain")[-1]["status"] == "failed"
    assert page.start_button.isEnabled()
    dialog = page.show_failure_details()  # the "Details…" link: the engine's traceback
    assert "Traceback" in dialog.detailedText() or "colour" in dialog.detailedText()
    dialog.close()
    assert_event_loop_runs(qtbot)


def test_a_killed_worker_process_becomes_a_failed_run_not_a_hang(qtbot, project):
    import os
    import signal

    page, store, _ = start_long_run(qtbot, project)
    os.kill(page.process.pid(), signal.SIGKILL)  # as if the kernel's OOM killer struck
    assert wait_for_end(qtbot, page, 20_000) == "failed"
    assert "training process" in page.last_message and "before the run ended" in page.last_message
    assert "The run failed" in page.error_banner.text()
    assert store.runs("pretrain")[-1]["status"] == "failed"
    assert page.start_button.isEnabled()
    assert_event_loop_runs(qtbot)


def test_out_of_memory_and_divergence_get_their_own_advice():
    from sslstudio.gui.pages.pretrain_page import failure_advice

    assert "smaller batch" in failure_advice("the device ran out of memory at batch size 512")
    assert "learning rate" in failure_advice("the loss became NaN at step 40")
    assert "Data page" in failure_advice("no images could be decoded")


def test_closing_the_page_stops_a_running_run_with_a_checkpoint(qtbot, project):
    page, _, _ = start_long_run(qtbot, project)
    process = page.process
    page.shutdown()
    assert not process.is_running() or process.process.state() == process.process.NotRunning
    assert process.exit_code == 0, process.output
    assert (page.run_dir / "checkpoints").is_dir()
    ends = [e for e in read_run_events(page.run_dir) if e.get("kind") == "end"]
    assert ends and ends[-1]["status"] == "stopped"


def read_run_events(run_dir):
    from sslstudio.gui.run_bridge import read_events

    return read_events(run_dir)


def test_follow_a_run_folder_written_elsewhere(qtbot, project, tmp_path):
    from sslstudio.gui.pages.pretrain_page import PretrainPage

    store, _ = project
    page = PretrainPage(make_context(store))
    qtbot.addWidget(page)
    run = tmp_path / "cli-run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"task": "rotation"}))
    log = run / "metrics.jsonl"
    log.write_text("".join(json.dumps(step_event(s, 1.0 / (s + 1))) + "\n" for s in range(5)))
    assert page.follow_run(run)
    qtbot.waitUntil(lambda: page.plots.curves.points == 5, timeout=2000)
    with open(log, "a") as handle:
        handle.write(json.dumps(step_event(5, 0.1)) + "\n")
    qtbot.waitUntil(lambda: page.plots.curves.points == 6, timeout=2000)
    assert not page.follow_run(tmp_path / "not-a-run")
    assert "not a run folder" in page.error_banner.text()


def test_bridge_delivers_events_from_a_training_thread_in_order(qtbot):
    import threading

    from sslstudio.gui.run_bridge import EventBridge

    bridge = EventBridge(interval_ms=10)
    got: list[int] = []
    bridge.event.connect(lambda e: got.append(e["step"]))
    worker = threading.Thread(target=lambda: [bridge({"kind": "step", "step": i})
                                              for i in range(500)])
    worker.start()
    worker.join()
    qtbot.waitUntil(lambda: len(got) == 500, timeout=2000)
    assert got == list(range(500))


def test_repainting_plots_many_times_does_not_exhaust_none(qtbot):
    """PySide6 6.12 on Python 3.11 drops a reference to None per null-pointer virtual call;
    without the guard in plots.py the interpreter aborts after a few thousand repaints."""
    import sys

    from sslstudio.gui.widgets.plots import TrainingPlots

    plots = TrainingPlots()
    qtbot.addWidget(plots)
    plots.resize(800, 500)
    plots.show()
    for step in range(200):
        plots.add_event(step_event(step, 1.0 / (step + 1)))
        plots._redraw()
        plots.view.grab()
    assert sys.getrefcount(None) > 10**6


def test_cpu_defaults_are_a_time_budget_gpu_defaults_epochs():
    from sslstudio.gui.pages.pretrain_page import suggested_defaults

    cpu = suggested_defaults(10_000, "cpu")
    assert cpu["budget_kind"] == "minutes" and cpu["minutes"] == 10
    assert cpu["backbone"] == "small_cnn"
    gpu = suggested_defaults(10_000, "cuda:0")
    assert gpu["budget_kind"] == "epochs" and gpu["backbone"].startswith("resnet")


def test_the_command_line_and_the_page_recommend_the_same_task():
    from sslstudio.commands.pretrain import DEFAULT_TASK
    from sslstudio.gui.pages.pretrain_page import suggested_defaults

    for device in ("cpu", "cuda:0"):
        assert suggested_defaults(10_000, device)["task"] == DEFAULT_TASK


def test_the_page_starts_with_the_cpu_time_budget(qtbot, project):
    from sslstudio.gui.pages.pretrain_page import PretrainPage

    store, _ = project
    page = PretrainPage(make_context(store))
    qtbot.addWidget(page)
    page.device.setCurrentIndex(page.device.findData("cpu"))
    page.on_project_changed()
    assert page.budget_kind.currentText() == "minutes"
    assert page.current_values()["minutes"] == 10 and page.current_values()["epochs"] is None
    # the measured CPU default (benchmarks/bench_cpu_budget.py): contrastive at 32 px
    assert page.selected_task() == "contrastive" and page.image_size.value() == 32


def test_the_picked_task_shows_at_the_top_and_on_the_start_button(qtbot, project):
    """The default card used to be fifth, below the fold at 1280×800, its radio dot the only
    sign of it: now it comes first, marked, the picked card is outlined, and Start names it."""
    from PySide6.QtCore import Qt

    from sslstudio.gui.pages.pretrain_page import PretrainPage

    store, _ = project
    page = PretrainPage(make_context(store))
    qtbot.addWidget(page)
    first = next(iter(page.cards.values()))
    assert first.name == page.selected_task() == "contrastive"
    assert "recommended" in first.radio.text()
    assert page.start_button.text() == "Start: Contrastive (SimCLR)"
    assert first.styleSheet() and not page.cards["rotation"].styleSheet()
    qtbot.mouseClick(page.cards["rotation"], Qt.LeftButton)
    assert page.selected_task() == "rotation" and page.start_button.text() == "Start: Rotation"
    assert page.cards["rotation"].styleSheet() and not first.styleSheet()


def test_a_reopened_project_shows_its_latest_run(qtbot, project):
    from sslstudio.gui.pages.pretrain_page import PretrainPage

    store, _ = project
    run_dir = store.runs_dir / "earlier-run"
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.jsonl").write_text("".join(
        json.dumps(e) + "\n" for e in [{"kind": "start", "step": 0, "time": 0}]
        + [step_event(s, 1.0 / s) for s in range(1, 6)]
        + [{"kind": "end", "step": 5, "time": 5, "status": "completed"}]))
    store.add_run("pretrain", run_dir, {"task": "rotation", "backbone": "small_cnn"},
                  status="completed")
    page = PretrainPage(make_context(store))
    qtbot.addWidget(page)
    assert page.plots.curves.points == 5
    assert "earlier-run" in page.state_label.text()


def test_torch_work_in_the_apps_threads_leaves_a_core_for_the_window(monkeypatch):
    import torch

    from sslstudio.gui import workers

    before = torch.get_num_threads()
    try:
        monkeypatch.setattr("os.cpu_count", lambda: 4)
        torch.set_num_threads(4)
        assert workers.leave_a_core_for_the_window() == 3
        monkeypatch.setattr("os.cpu_count", lambda: 1)
        assert workers.leave_a_core_for_the_window() == 1
    finally:
        torch.set_num_threads(before)


def test_a_stopped_run_continues_from_its_checkpoint_in_the_same_folder(qtbot, project):
    page, store, steps = start_long_run(qtbot, project)
    page.stop_run()
    assert wait_for_end(qtbot, page, 30_000) == "stopped"
    first_steps = max(e["step"] for e in steps)
    page.refresh_runs()
    page.run_table.selectRow(0)
    assert page.continue_button.isEnabled()
    assert page.continue_run()
    assert page.is_running() and store.runs("pretrain")[-1]["status"] == "running"
    assert page.plots.curves.points >= first_steps  # the curves so far are kept
    qtbot.waitUntil(lambda: max(e["step"] for e in steps) > first_steps + 1, timeout=180_000)
    page.stop_run()
    assert wait_for_end(qtbot, page, 30_000) == "stopped"
    runs = store.runs("pretrain")
    assert len(runs) == 1 and runs[0]["status"] == "stopped"
    starts = [e for e in read_run_events(page.run_dir) if e.get("kind") == "start"]
    assert [e.get("resumed_from") is not None for e in starts] == [False, True]


def test_runs_left_running_by_a_closed_app_are_settled_on_reopen(qtbot, project):
    from sslstudio.gui.pages.pretrain_page import PretrainPage

    store, _ = project
    ended, cut = store.runs_dir / "ended", store.runs_dir / "cut"
    for folder, events in ((ended, [step_event(1, 1.0), {"kind": "end", "step": 1,
                                                         "status": "stopped"}]),
                           (cut, [step_event(1, 1.0), step_event(2, 0.9)])):
        folder.mkdir(parents=True)
        (folder / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
        store.add_run("pretrain", folder, {"task": "rotation"}, status="running")
    page = PretrainPage(make_context(store))
    qtbot.addWidget(page)
    statuses = {Path(r["path"]).name: r for r in store.runs("pretrain")}
    assert statuses["ended"]["status"] == "stopped"
    assert statuses["cut"]["status"] == "interrupted"
    assert "closed before the run ended" in statuses["cut"]["summary"]["message"]
    assert statuses["cut"]["summary"]["steps"] == 2


def test_a_collapsed_section_points_right_and_an_open_one_down(qtbot):
    """superqt's default ▲ on a collapsed section reads as "open"; ours shows ▶."""
    from PySide6.QtWidgets import QLabel

    from sslstudio.gui.pages.pretrain_page import _collapsible

    section = _collapsible("Advanced", QLabel("body"))
    qtbot.addWidget(section)

    def ink(icon):
        image = icon.pixmap(16, 16).toImage()
        w, h = image.width(), image.height()
        dark = [(x, y) for y in range(h) for x in range(w) if image.pixelColor(x, y).alpha() > 128]
        return (sum(x < w // 2 for x, _ in dark), sum(x >= w // 2 for x, _ in dark),
                sum(y < h // 2 for _, y in dark), sum(y >= h // 2 for _, y in dark))

    left, right, _, _ = ink(section.collapsedIcon())
    assert left > right          # ▶: wide on the left, a point on the right
    _, _, top, bottom = ink(section.expandedIcon())
    assert top > bottom          # ▼: wide at the top
