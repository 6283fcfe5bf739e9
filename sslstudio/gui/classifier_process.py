"""A classifier fit seen by the page as progress signals and one outcome: in a worker
process (``sslstudio classifier-worker``) for the fits that train a network, in a thread
for the ones that only fit a head on the backbone's features.

In a thread of the app the fit had to leave a core to the window, and its Python code
still held the window up (it shares the interpreter lock with the UI). The process
trains on every core at nice 10, and the window wins every contest for a core: on the
sample and 2 cores, self-training took 353 s instead of 540 s, and the longest stall of
the window fell from 219 ms to 15 ms (benchmarks/bench_gui_classifier.py).

The job folder's files are described in sslstudio/train/classifier_job.py. A process
that dies without writing its outcome becomes a "failed" outcome that says why, with
the process's last output.

A process costs its start-up, about 2.5 s here (importing torch), which is most of a
linear probe's time; the features behind it are torch work that leaves the window
responsive from a thread too. So those fits stay in a thread (``ClassifierThread``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from sslstudio.gui.run_process import WorkerProcess
from sslstudio.gui.workers import Worker
from sslstudio.train.classifier_job import (CONTROL_FILE, JOB_FILE, OUTCOME_FILE, PROGRESS_FILE,
                                            ClassifierJob, failed_outcome, read_json,
                                            run_classifier_job)
from sslstudio.train.control import write_control_state


def remove_finished_jobs(jobs_dir: Path) -> None:
    """Job folders left by an app that ended before reading their outcome (it crashed, or
    was killed); a folder without an outcome may belong to a fit still running elsewhere."""
    for folder in jobs_dir.iterdir():
        if (folder / OUTCOME_FILE).is_file():
            shutil.rmtree(folder, ignore_errors=True)


class ClassifierProcess(WorkerProcess):
    """One classifier fit in a child process; ``finished`` carries its outcome dict
    (status "done", "cancelled" or "failed"), after which the job folder is removed."""

    progress = Signal(int, int)     # done, total
    finished = Signal(dict)

    def __init__(self, job: ClassifierJob, job_dir: str | Path, poll_ms: int = 100,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.job = job
        self.job_dir = Path(job_dir)
        self.outcome: dict | None = None
        self._last_progress: tuple[int, int] | None = None
        self._stop_requested = False
        self.timer = QTimer(self)
        self.timer.setInterval(poll_ms)
        self.timer.timeout.connect(self._poll_progress)

    def start(self) -> None:
        """Write the job and start the process; an unwritable job folder raises OSError."""
        if self.job_dir.exists():
            shutil.rmtree(self.job_dir)
        self.job_dir.mkdir(parents=True)
        remove_finished_jobs(self.job_dir.parent)
        (self.job_dir / JOB_FILE).write_text(self.job.to_json(), encoding="utf-8")
        write_control_state(self.job_dir / CONTROL_FILE, "run")
        self.timer.start()
        self._start_worker(["classifier-worker", "--job", str(self.job_dir),
                            "--parent-pid", str(os.getpid())])

    def cancel(self) -> None:
        """Ask the fit to stop at its next check (within a batch or so)."""
        if self.outcome is not None:
            return
        self._stop_requested = True
        try:
            write_control_state(self.job_dir / CONTROL_FILE, "stop")
        except OSError:  # the job folder vanished: nothing can be saved anyway
            self.process.kill()

    def shutdown(self, wait_ms: int = 5000) -> None:
        """Cancel and wait; kill the process if it does not end in ``wait_ms``. A fit that is
        cut short saves nothing, so there is nothing to wait for beyond a clean exit."""
        if self.outcome is not None:
            return
        self.cancel()
        if not self.process.waitForFinished(wait_ms):
            self.process.kill()
            self.process.waitForFinished(2000)

    # ------------------------------------------------------------------ from Qt
    def _poll_progress(self) -> None:
        data = read_json(self.job_dir / PROGRESS_FILE)
        if not isinstance(data, dict):
            return
        try:
            current = (int(data["done"]), int(data["total"]))
        except (KeyError, TypeError, ValueError):
            return
        if current != self._last_progress:
            self._last_progress = current
            self.progress.emit(*current)

    def _finish(self, why: str) -> None:
        if self.outcome is not None:
            return
        self.timer.stop()
        self._poll_progress()
        outcome = read_json(self.job_dir / OUTCOME_FILE)
        if not isinstance(outcome, dict) or "status" not in outcome:
            # Ended without an outcome after a stop request (killed by shutdown because it
            # was slow to stop, say on a busy machine): the user's cancel, not a failure.
            if self._stop_requested:
                outcome = {"status": "cancelled", "message": f"{why} after the stop request",
                           "details": self.output.strip()}
            else:
                last = self._last_output_line()
                outcome = {"status": "failed", "message": f"{why} before the fit finished"
                           + (f": {last}" if last else ""), "details": self.output.strip()}
        self.outcome = outcome
        shutil.rmtree(self.job_dir, ignore_errors=True)
        try:
            self.job_dir.parent.rmdir()   # the jobs folder, once no other job is in it
        except OSError:
            pass
        self.finished.emit(outcome)


# Fits that extract features and fit a head on them: seconds, so a thread (no start-up).
# The core's HEAD_ONLY_METHODS (not imported: the app starts without torch; a test keeps
# the two equal).
THREAD_METHODS = ("linear", "knn", "propagate")


class ClassifierThread(QObject):
    """ClassifierProcess's interface for a fit in a thread of the app (THREAD_METHODS)."""

    progress = Signal(int, int)
    finished = Signal(dict)

    def __init__(self, job: ClassifierJob, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.job = job
        self.outcome: dict | None = None
        self._cancelled = False
        self.worker: Worker | None = None

    def start(self) -> None:
        def fit(progress=None):
            return run_classifier_job(self.job, progress=progress,
                                      cancel=lambda: self._cancelled)

        self.worker = Worker(fit, pass_progress=True, parent=self)
        self.worker.progress.connect(lambda done, total, _text: self.progress.emit(done, total))
        self.worker.result.connect(self._done)
        self.worker.error.connect(lambda exc: self._done(
            failed_outcome(exc, self.worker.traceback_text)))
        # a fit that ended just as Cancel was pressed has saved its model: keep it
        self.worker.cancelled_signal.connect(lambda: self._done(
            self.worker.value if isinstance(self.worker.value, dict)
            else {"status": "cancelled"}))
        self.worker.start()

    def cancel(self) -> None:
        self._cancelled = True
        if self.worker is not None:
            self.worker.cancel()

    def shutdown(self, wait_ms: int = 5000) -> None:
        if self.outcome is None and self.worker is not None:
            self.cancel()
            self.worker.wait(wait_ms)

    def _done(self, outcome: dict) -> None:
        if self.outcome is None:
            self.outcome = outcome
            self.finished.emit(outcome)


def classifier_fit(job: ClassifierJob, jobs_dir: Path, parent: QObject | None = None):
    """A ClassifierThread or ClassifierProcess for ``job``, wired by the caller, not started."""
    if job.method in THREAD_METHODS:
        return ClassifierThread(job, parent=parent)
    return ClassifierProcess(job, jobs_dir / Path(job.model_dir).name, parent=parent)
