"""RunControl: stop / pause / resume a run from another thread (GUI, signal handler)."""

from __future__ import annotations

import threading


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
        return self._stop.is_set()

    def is_paused(self) -> bool:
        return self.paused

    def wait_while_paused(self, timeout: float | None = None) -> bool:
        """Block while paused; returns True when the run may go on (False: timed out)."""
        return self._running.wait(timeout)
