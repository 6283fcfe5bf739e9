"""A real SSL Studio window for the screenshot scripts (tour.py, task_options.py).

The waits keep Qt's events flowing, so background work finishes and the window paints.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


class AppWindow:
    def __init__(self, home: Path, script: str, size: tuple[int, int] = (1280, 800)) -> None:
        os.environ["SSLSTUDIO_HOME"] = str(home)  # before the app reads its settings

        from sslstudio.gui.app import create_app
        from sslstudio.gui.main_window import MainWindow

        self.script = script
        self.app = create_app()
        self.window = MainWindow()
        self.window.resize(*size)
        self.window.show()

    def settle(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.app.processEvents()
            time.sleep(0.02)

    def wait_until(self, condition, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                self.window.close()   # cancels background work, so the exit is clean
                raise SystemExit(f"{self.script}: timed out waiting for {what}")
            self.app.processEvents()
            time.sleep(0.02)

    def open_sample(self) -> None:
        """Open the built-in sample and wait until it is scanned."""
        ctx = self.window.ctx
        self.window.open_sample()
        self.wait_until(lambda: ctx.store is not None and not ctx.busy, 300, "the sample")
