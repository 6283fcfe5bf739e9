"""A pretraining run in a worker process, seen by the app as a stream of events.

Training in a thread of the app made the window stutter: the training loop's
Python code and the UI take turns on one interpreter lock. A separate process
(``sslstudio pretrain-worker``, the same engine the CLI runs) removes that
contest. The app

* writes the run's settings to ``RUN_DIR/app-config.json`` and starts the process;
* follows ``RUN_DIR/metrics.jsonl`` with a ``RunFollower`` (the same reader that
  follows a CLI or torchrun run), so every event reaches the pages;
* steers the run through ``RUN_DIR/control`` (run / pause / stop);
* turns a process that dies without an "end" event (killed, crashed, failed to
  start) into a failed "end" event that says why, with the process's last output.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, Signal

from sslstudio.gui.run_bridge import RunFollower
from sslstudio.train.control import write_control_state
from sslstudio.train.events import make_event

CONFIG_FILE = "app-config.json"
CONTROL_FILE = "control"
OUTPUT_TAIL_CHARS = 8000


def worker_command() -> list[str]:
    """The program and first arguments that start ``sslstudio`` again (bundle or Python)."""
    if getattr(sys, "frozen", False):  # a PyInstaller bundle: the executable is the CLI
        return [sys.executable]
    return [sys.executable, "-m", "sslstudio"]


def child_environment() -> QProcessEnvironment:
    """The app's environment for a worker process, which must import this very sslstudio
    wherever the app was started from, and print its output as it goes."""
    env = QProcessEnvironment.systemEnvironment()
    env.insert("PYTHONUNBUFFERED", "1")
    package_parent = str(Path(__file__).resolve().parents[2])
    existing = env.value("PYTHONPATH", "")
    env.insert("PYTHONPATH", package_parent + (os.pathsep + existing if existing else ""))
    return env


class WorkerProcess(QObject):
    """A child ``sslstudio`` process: keeps the tail of its output and, however it ends
    (exits, crashes, fails to start), calls ``_finish(why)`` with the reason in words."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.output = ""
        self.exit_code: int | None = None
        self.process = QProcess(self)
        self.process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        self.process.readyReadStandardOutput.connect(self._read_output)
        self.process.finished.connect(self._on_finished)
        self.process.errorOccurred.connect(self._on_process_error)

    def _start_worker(self, arguments: list[str]) -> None:
        self.process.setProcessEnvironment(child_environment())
        program, *first = worker_command()
        self.process.start(program, [*first, *arguments])

    def _read_output(self) -> None:
        data = bytes(self.process.readAllStandardOutput()).decode("utf-8", errors="replace")
        self.output = (self.output + data)[-OUTPUT_TAIL_CHARS:]

    def _last_output_line(self) -> str:
        lines = self.output.strip().splitlines()
        return lines[-1] if lines else ""

    def _on_finished(self, exit_code: int, exit_status) -> None:
        self._read_output()
        self.exit_code = exit_code
        crashed = exit_status == QProcess.ExitStatus.CrashExit
        self._finish(f"the training process {'crashed' if crashed else 'ended'} "
                     f"(exit code {exit_code})")

    def _on_process_error(self, error) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._finish(f"the training process could not start: {self.process.errorString()}")

    def _finish(self, why: str) -> None:
        raise NotImplementedError


class PretrainProcess(WorkerProcess):
    """One pretraining run in a child process; emits ``event(dict)`` like an EventBridge."""

    event = Signal(dict)
    exited = Signal()  # the process is gone and every event has been delivered

    def __init__(self, config, poll_ms: int = 100, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.config = config
        self.run_dir = Path(config.out)
        self.control_path = self.run_dir / CONTROL_FILE
        self.saw_end = False
        self.follower = RunFollower(self.run_dir, interval_ms=poll_ms, parent=self)
        self.follower.event.connect(self._on_event)
        self._exited = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.config.resume:
            # a resumed run appends to its log: follow only what this process writes
            # (the earlier "end" would otherwise end this run at once)
            self.follower.skip_existing()
        config_path = self.run_dir / CONFIG_FILE
        config_path.write_text(self.config.to_json(), encoding="utf-8")
        write_control_state(self.control_path, "run")
        self.follower.start()
        self._start_worker(["pretrain-worker", "--config", str(config_path),
                            "--control", str(self.control_path),
                            "--parent-pid", str(os.getpid())])

    def is_running(self) -> bool:
        return not self._exited

    def pid(self) -> int:
        return int(self.process.processId())

    def pause(self) -> None:
        self._steer("pause")

    def resume(self) -> None:
        self._steer("run")

    def stop(self) -> None:
        self._steer("stop")

    def _steer(self, state: str) -> None:
        if self._exited:
            return
        try:
            write_control_state(self.control_path, state)
        except OSError as exc:  # the run folder vanished: nothing left to steer
            self.output += f"\ncannot write {self.control_path}: {exc}"

    def shutdown(self, wait_ms: int = 30_000) -> None:
        """Ask the run to stop with a checkpoint; kill it if it does not end in ``wait_ms``.

        Idle, a stop takes under a second. The worker runs at nice 10, so on a machine kept
        busy by other programs the step in flight alone took 8 s (measured): killing it then
        would lose the training since the last checkpoint."""
        if self._exited:
            return
        self.stop()
        if not self.process.waitForFinished(wait_ms):
            self.process.kill()
            self.process.waitForFinished(2000)

    # ------------------------------------------------------------------ signals from Qt
    def _on_event(self, event: dict) -> None:
        if event.get("kind") == "end":
            self.saw_end = True
        self.event.emit(event)

    def _finish(self, why: str) -> None:
        if self._exited:
            return
        self._exited = True
        self.follower.poll()  # the events written just before the process ended
        self.follower.stop()
        if not self.saw_end:
            last = self._last_output_line()
            message = f"{why} before the run ended" + (f": {last}" if last else "")
            details = self.output.strip()
            step = self.follower.last_step
            self._on_event(make_event("error", step, message=message, details=details))
            self._on_event(make_event("end", step, status="failed", message=message))
        self.exited.emit()
