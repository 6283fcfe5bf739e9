"""The window, the workers and project opening, driven through real widgets."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import pytest

import pytestqt  # noqa: F401 - a declared test dependency: missing means failure, not a skip

from PySide6.QtWidgets import QApplication, QMessageBox  # noqa: E402

from sslstudio import paths  # noqa: E402
from sslstudio.gui import workers  # noqa: E402
from sslstudio.gui.main_window import PAGE_TITLES, MainWindow, PlaceholderPage  # noqa: E402


@pytest.fixture
def window(qtbot):
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    yield win
    win.close()


def _error_dialogs() -> list[QMessageBox]:
    return [w for w in QApplication.topLevelWidgets()
            if isinstance(w, QMessageBox) and w.objectName() == "errorDialog" and w.isVisible()]


def test_window_has_the_six_workflow_pages(window):
    assert PAGE_TITLES == ["Data", "Pretrain", "Inspect", "Label", "Classifier", "Export"]
    assert window.sidebar.count() == 6
    for row, title in enumerate(PAGE_TITLES):
        window.sidebar.setCurrentRow(row)
        page = window.stack.currentWidget()
        assert window.current_page_title() == title
        assert getattr(page, "title", None) == title
    # the pages this shell owns must be real, never the placeholder
    assert not isinstance(window.page("Data"), PlaceholderPage)
    assert not isinstance(window.page("Label"), PlaceholderPage)


def test_worker_exception_becomes_a_dialog_and_the_window_stays_usable(window, qtbot):
    def explode():
        raise ValueError("the file cats/broken.jpg is truncated")

    worker = window.ctx.run_in_background(explode)
    qtbot.waitUntil(lambda: bool(_error_dialogs()), timeout=5000)
    box = _error_dialogs()[0]
    assert "cats/broken.jpg is truncated" in box.informativeText()
    assert "Traceback" in box.detailedText() and "explode" in box.detailedText()
    assert worker.done
    box.close()
    # still usable: pages switch and new work runs and returns its result
    window.show_page("Label")
    assert window.current_page_title() == "Label"
    results = []
    window.ctx.run_in_background(lambda a, b: a + b, 2, 3, on_result=results.append)
    qtbot.waitUntil(lambda: results == [5], timeout=5000)


def test_progress_is_throttled_and_the_last_update_arrives(qtbot, window):
    seen, results = [], []

    def busy(progress):
        for i in range(1, 20001):
            progress(i, 20000, "counting")
        return "ok"

    window.ctx.run_in_background(busy, on_progress=lambda d, t, s: seen.append((d, t, s)),
                                 on_result=results.append)
    qtbot.waitUntil(lambda: results == ["ok"], timeout=10000)
    assert seen[-1] == (20000, 20000, "counting")
    assert len(seen) < 200   # 20,000 calls, a few dozen signals at most


def test_cancelled_work_reports_cancellation_not_an_error(qtbot, window, monkeypatch):
    shown = []
    monkeypatch.setattr(workers, "show_error", lambda *a, **k: shown.append(a))
    cancelled_calls = []

    def long_job(cancelled):
        deadline = time.monotonic() + 10
        while not cancelled() and time.monotonic() < deadline:
            time.sleep(0.01)
        raise RuntimeError("stopped")

    worker = window.ctx.run_in_background(long_job, on_cancelled=lambda: cancelled_calls.append(1))
    qtbot.wait(50)
    worker.cancel()
    qtbot.waitUntil(lambda: cancelled_calls == [1], timeout=5000)
    assert shown == []


EXIT_WITH_A_BUSY_WORKER = """
from PySide6.QtWidgets import QApplication
app = QApplication([])
import torch
from sslstudio.gui.workers import start_worker

def busy(cancelled):
    x = torch.randn(256, 256)
    for _ in range(400):     # torch's own threads are at work while Python exits
        if cancelled():
            return 0
        x = torch.tanh(x @ x)
    return 1

start_worker(busy, on_result=print)
"""


def test_leaving_python_while_a_worker_runs_torch_does_not_abort():
    # A daemon thread still inside torch when the interpreter finalizes made the process
    # abort with "terminate called without an active exception" (exit code 134).
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run([sys.executable, "-c", EXIT_WITH_A_BUSY_WORKER], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "terminate called" not in out.stderr


def test_opening_a_folder_creates_a_project_named_after_it(window, qtbot, toy_folder):
    root, _ = toy_folder
    assert window.open_path(root)
    store = window.ctx.store
    assert store.project_dir == paths.default_projects_dir() / root.name
    assert store.image_root == root.resolve()
    assert window.current_page_title() == "Data"
    # opening the same folder again reuses the project; it is listed as recent
    first = store.project_dir
    window.close_project()
    assert window.ctx.store is None
    assert window.open_path(root)
    assert window.ctx.store.project_dir == first
    window.show_start_screen()
    items = [window.start_screen.recent_list.item(i).text()
             for i in range(window.start_screen.recent_list.count())]
    assert any(str(first) in text for text in items)


def test_opening_a_missing_folder_shows_a_readable_error(window, qtbot, tmp_path, monkeypatch):
    shown = []
    monkeypatch.setattr(workers, "show_error",
                        lambda parent, title, exc, details=None: shown.append((title, str(exc))))
    assert not window.open_path(tmp_path / "does-not-exist")
    assert shown and "does-not-exist" in shown[0][1]
    assert window.ctx.store is None


def test_gui_sample_creates_the_sample_project(qtbot, monkeypatch):
    from sslstudio.commands import gui as gui_command

    monkeypatch.setenv("SSLSTUDIO_SAMPLE_PER_CLASS", "3")
    args = argparse.Namespace(path=None, sample=True, screenshot=None, page=None,
                              quit_after=None)
    _, window = gui_command.build_window(args)
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window.ctx.store is not None, timeout=60000)
    store = window.ctx.store
    assert store.project_dir == paths.sample_project_dir()
    assert store.image_root == paths.sample_images_dir().resolve()
    assert window.current_page_title() == "Data"
    data_page = window.page("Data")
    qtbot.waitUntil(lambda: data_page.scan_worker is None and data_page.model.rowCount() > 0,
                    timeout=60000)
    assert data_page.model.rowCount() == len(store.image_relpaths()) >= 3
    window.close()


def test_qt_binding_keeps_reference_counts_balanced(qapp):
    """PySide6 6.12.0 on Python 3.11 drops a reference to None on every void call
    (and to True on every signal emit), so a GUI crashes after a few thousand
    calls: pyproject pins a release without that bug; this catches a regression."""
    import sys

    from PySide6.QtCore import QObject, Signal
    from PySide6.QtWidgets import QLabel

    class Emitter(QObject):
        ping = Signal()

    label, emitter = QLabel(), Emitter()
    emitter.ping.connect(lambda: None)
    none_before, true_before = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(2000):
        label.setText("x")
        emitter.ping.emit()
    assert sys.getrefcount(None) - none_before > -100
    assert sys.getrefcount(True) - true_before > -100
