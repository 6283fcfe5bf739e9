"""A classifier fit in a worker process (``sslstudio classifier-worker``), seen by the page
as progress signals and one outcome.

In a thread of the app the fit had to leave a core to the window, and its Python code
still held the window up (it shares the interpreter lock with the UI). The process
trains on every core at nice 10, and the window wins every contest for a core: on the
sample and 2 cores, self-training took 353 s instead of 540 s, and the longest stall of
the window fell from 219 ms to 15 ms (benchmarks/bench_gui_classifier.py).

The job folder's files are described in sslstudio/train/classifier_job.py. A process
that dies without writing its outcome becomes a "failed" outcome that says why, with
the process's last output.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from sslstudio.gui.run_process import WorkerProcess
from sslstudio.train.classifier_job import (CONTROL_FILE, JOB_FILE, OUTCOME_FILE, PROGRESS_FILE,
                                            ClassifierJob, read_json)
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

    def is_running(self) -> bool:
        return self.outcome is None

    def cancel(self) -> None:
        """Ask the fit to stop at its next check (within a batch or so)."""
        if self.outcome is not None:
            return
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
            last = self._last_output_line()
            outcome = {"status": "failed",
                       "message": f"{why} before the fit finished" + (f": {last}" if last else ""),
                       "details": self.output.strip()}
        self.outcome = outcome
        shutil.rmtree(self.job_dir, ignore_errors=True)
        try:
            self.job_dir.parent.rmdir()   # the jobs folder, once no other job is in it
        except OSError:
            pass
        self.finished.emit(outcome)
