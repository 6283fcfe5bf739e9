"""RunControl: stop / pause / resume a run from another thread, or (FileRunControl) another process."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path


class RunControl:
    """Thread-safe flags the engine checks between steps.

    ``stop()`` asks the run to write a checkpoint and end as "stopped";
    ``pause()`` holds the engine between two steps until ``resume()`` or ``stop()``.
    """

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._running = threading.Event()  # set while not paused
        self._running.set()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()  # a paused run must wake up to stop

    def pause(self) -> None:
        if not self._stop.is_set():
            self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def is_stopped(self) -> bool:
        return self.stop_requested

    def is_paused(self) -> bool:
        return self.paused

    def wait_while_paused(self, timeout: float | None = None) -> bool:
        """Block while paused; returns True when the run may go on (False: timed out)."""
        return self._running.wait(timeout)


# ---------------------------------------------------------------- steering a run in another process
CONTROL_STATES = ("run", "pause", "stop")


def write_control_state(path: str | Path, state: str) -> None:
    """Ask the run reading ``path`` to run, pause or stop (atomic: the reader never sees half)."""
    if state not in CONTROL_STATES:
        raise ValueError(f"control state must be one of {CONTROL_STATES}, not {state!r}")
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(state, encoding="ascii")
    os.replace(tmp, path)


class FileRunControl(RunControl):
    """A RunControl steered through a small file, for a run in a worker process.

    The app writes "run", "pause" or "stop" into the file (``write_control_state``);
    the engine, which asks its control between steps, sees the change within
    ``poll_s``. A missing or unreadable file means "run". When ``parent_pid`` is
    given and that process is gone (the app crashed or was killed), the run stops
    as if asked, so it writes its checkpoint instead of training on unseen.
    """

    def __init__(self, path: str | Path, parent_pid: int | None = None,
                 poll_s: float = 0.2) -> None:
        super().__init__()
        self.path = Path(path)
        self.parent_pid = parent_pid
        self.poll_s = poll_s
        self._checked = -1e9

    def _parent_gone(self) -> bool:
        if not self.parent_pid:
            return False
        # on POSIX an orphan is re-parented, so its parent id changes
        return os.getppid() != self.parent_pid

    def refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < self.poll_s:
            return
        self._checked = now
        try:
            state = self.path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            state = "run"
        if state == "stop" or self._parent_gone():
            self.stop()
        elif state == "pause":
            self.pause()
        else:
            self.resume()

    @property
    def stop_requested(self) -> bool:
        self.refresh()
        return super().stop_requested

    @property
    def paused(self) -> bool:
        self.refresh()
        return super().paused

    def wait_while_paused(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.refresh(force=True)
            if self._running.is_set():
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(self.poll_s / 2)
