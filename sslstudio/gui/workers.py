"""Background work for the GUI: one thread per job, results and errors as Qt signals.

Contract (used by every page through ``AppContext.run_in_background``)::

    worker = ctx.run_in_background(fn, *args, on_result=None, on_error=None,
                                   on_progress=None, on_cancelled=None, cancellable=True)

* ``fn(*args)`` runs in its own (Python) thread and must not touch widgets. If ``fn`` has a parameter named
  ``progress`` and ``on_progress`` is given, it is called with
  ``progress=callback`` where ``callback(done, total, text="")`` may be called
  as often as you like: the UI sees the latest value at most 25 times a
  second (the last update is always delivered before the result). If ``fn`` has a parameter named ``cancelled``,
  it gets a ``cancelled()`` callable returning True once ``worker.cancel()``
  was called.
* ``on_result(value)`` / ``on_progress(done, total, text)`` / ``on_error(exc)``
  run in the UI thread. ``exc.__traceback__`` is intact and
  ``worker.traceback_text`` holds the formatted traceback.
* Without ``on_error`` an exception becomes a readable error dialog
  (``show_error``) with the traceback under "Show Details…".
* An exception raised after ``cancel()`` counts as a cancellation: neither the
  dialog nor ``on_error`` appear; ``on_cancelled()`` runs instead.
* ``worker.finished_all`` fires last, whatever happened.
"""

from __future__ import annotations

import atexit
import inspect
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

from sslstudio.train.events import error_message  # noqa: F401 - pages use it from here too

PROGRESS_INTERVAL_S = 0.04   # the UI looks at a worker 25 times a second, no more

EXIT_WAIT_S = 10.0           # at interpreter exit, how long running workers get to finish

# Workers whose function has not returned yet. At interpreter exit they are cancelled and
# briefly awaited: a daemon thread still inside torch's C++ code when Python finalizes
# aborts the process ("terminate called without an active exception", exit code 134).
_running: set[Worker] = set()
_running_lock = threading.Lock()


@atexit.register
def _finish_workers_at_exit() -> None:
    with _running_lock:
        pending = list(_running)
    for worker in pending:
        worker.cancel()
    deadline = time.monotonic() + EXIT_WAIT_S
    for worker in pending:
        worker.wait(max(0.0, deadline - time.monotonic()) * 1000)


# Dialogs opened by show_error stay referenced here until closed (they are non-blocking).
_open_dialogs: list[QMessageBox] = []


def show_error(parent: QWidget | None, title: str, exc: BaseException | str,
               details: str | None = None) -> QMessageBox:
    """A non-blocking error dialog: the message in words, the traceback under details."""
    if isinstance(exc, BaseException):
        message = error_message(exc)
        if details is None and exc.__traceback__ is not None:
            details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    else:
        message = str(exc)
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Critical)
    box.setWindowTitle(title)
    box.setText(title)
    box.setInformativeText(message)
    if details:
        box.setDetailedText(details)
    box.setStandardButtons(QMessageBox.StandardButton.Close)
    box.setObjectName("errorDialog")
    _open_dialogs.append(box)
    box.finished.connect(lambda *_: _open_dialogs.remove(box) if box in _open_dialogs else None)
    box.open()
    return box


def _accepts(fn: Callable, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


class Worker(QObject):
    """Runs ``fn`` once in a Python thread; see the module docstring for the contract.

    The thread never touches Qt: it leaves its progress and its outcome in
    lock-protected fields, and a timer in the UI thread turns them into signals
    (queued cross-thread signals carrying Python objects proved crash-prone with
    PySide6, and polling also throttles a chatty progress callback for free).
    """

    result = Signal(object)
    error = Signal(object)              # the exception
    progress = Signal(int, int, str)    # done, total, text (throttled)
    cancelled_signal = Signal()
    finished_all = Signal()

    def __init__(self, fn: Callable, *args: Any, pass_progress: bool = False,
                 cancellable: bool = True, parent: QObject | None = None,
                 **kwargs: Any) -> None:
        super().__init__(parent)
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.cancellable = cancellable
        self.traceback_text = ""
        self.exception: BaseException | None = None
        self.value: Any = None
        self.done = False
        self._cancel = threading.Event()
        self._finished = threading.Event()
        self._lock = threading.Lock()
        self._pending: tuple[int, int, str] | None = None
        if pass_progress and _accepts(fn, "progress"):
            self.kwargs["progress"] = self._report
        if _accepts(fn, "cancelled"):
            self.kwargs["cancelled"] = self.is_cancelled
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"worker-{_describe(fn)}")
        self._timer = QTimer(self)
        self._timer.setInterval(int(PROGRESS_INTERVAL_S * 1000))
        self._timer.timeout.connect(self._poll)

    def start(self) -> None:
        with _running_lock:
            _running.add(self)
        self._thread.start()
        self._timer.start()

    # -------------------------------------------------------------- any thread
    def cancel(self) -> None:
        if self.cancellable:
            self._cancel.set()

    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def is_running(self) -> bool:
        return self._thread.is_alive()

    isRunning = is_running  # noqa: N815 - QThread-like spelling for callers used to it

    def wait(self, timeout_ms: int | None = None) -> bool:
        """Block until the function returned (True) or the timeout passed (False)."""
        return self._finished.wait(None if timeout_ms is None else timeout_ms / 1000)

    def _report(self, done: int, total: int, text: str = "") -> None:
        with self._lock:
            self._pending = (int(done), int(total), str(text))

    # -------------------------------------------------------------- worker thread
    def _run(self) -> None:
        try:
            self.value = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the UI
            self.exception = exc
            self.traceback_text = traceback.format_exc()
        finally:
            self._finished.set()
            with _running_lock:
                _running.discard(self)

    # -------------------------------------------------------------- UI thread
    def _poll(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            self.progress.emit(*pending)
        if not self._finished.is_set() or self.done:
            return
        self._timer.stop()
        self.done = True
        if self.exception is not None and not self.is_cancelled():
            self.error.emit(self.exception)
        elif self.is_cancelled():
            self.cancelled_signal.emit()
        else:
            self.result.emit(self.value)
        self.finished_all.emit()


def start_worker(fn: Callable, *args: Any, on_result: Callable | None = None,
                 on_error: Callable | None = None, on_progress: Callable | None = None,
                 on_cancelled: Callable | None = None, cancellable: bool = True,
                 error_parent: QWidget | None = None, error_title: str | None = None,
                 worker_parent: QObject | None = None, **kwargs: Any) -> Worker:
    """Create, wire and start a Worker (AppContext.run_in_background wraps this)."""
    worker = Worker(fn, *args, pass_progress=on_progress is not None,
                    cancellable=cancellable, parent=worker_parent, **kwargs)
    if on_result is not None:
        worker.result.connect(on_result)
    if on_progress is not None:
        worker.progress.connect(on_progress)
    if on_cancelled is not None:
        worker.cancelled_signal.connect(on_cancelled)
    if on_error is not None:
        worker.error.connect(on_error)
    else:
        title = error_title or f"{_describe(fn)} failed"
        # Looked up at call time so tests can monkeypatch workers.show_error.
        worker.error.connect(lambda exc: globals()["show_error"](
            error_parent, title, exc, worker.traceback_text or None))
    worker.start()
    return worker


def _describe(fn: Callable) -> str:
    name = getattr(fn, "__name__", "") or type(fn).__name__
    name = name.strip("_<>").replace("_", " ") or "task"
    return "The task" if name == "lambda" else name[:1].upper() + name[1:]


def leave_a_core_for_the_window() -> int:
    """Cap torch's CPU threads at cores − 1; returns torch's thread count afterwards.

    For long torch work in one of the app's threads; the cap is process-wide. With every
    core busy in torch kernels the UI thread waited for a CPU: on 2 cores the event-loop
    p99 gap roughly halved with one core free (docs/benchmarks-gui-training.md). The app's
    long fits (pretraining, the classifier) now run in their own lower-priority processes
    and keep every core; the benchmarks call this for their "thread" rows (the old design).
    """
    import os

    import torch

    cap = max(1, (os.cpu_count() or 1) - 1)
    if torch.get_num_threads() > cap:
        torch.set_num_threads(cap)
    return torch.get_num_threads()


def error_text(error) -> str:
    """The readable part of whatever an on_error callback receives (exception, tuple, text)."""
    for item in error:
        if isinstance(item, BaseException):
            return error_message(item)
    for item in error:
        if isinstance(item, tuple):
            return error_text(item)
        if isinstance(item, str) and item:
            return item.strip().splitlines()[-1]
    return "unknown error"
