"""Run events → Qt signals.

Two sources feed the same signal, so the pages never care where a run lives:

* ``EventBridge`` is an engine listener: the training thread calls it with each
  plain-dict event and it re-emits the dict as a Qt signal. The bridge object
  lives in the GUI thread, so Qt queues the emission across threads and the
  slots run in the GUI thread.
* ``RunFollower`` tails an existing run folder's ``metrics.jsonl`` (a CLI or
  torchrun run, or a finished run being reopened) and emits the same events.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

METRICS_FILE = "metrics.jsonl"


def resolve_preview_paths(event: dict, run_dir: str | Path | None) -> dict:
    """Make the PNG paths of a preview event absolute (the engine may write them relative)."""
    if event.get("kind") != "preview" or run_dir is None:
        return event
    images = []
    for item in event.get("images", []):
        path = Path(item.get("path", ""))
        if not path.is_absolute():
            path = Path(run_dir) / path
            if not path.exists() and (Path(run_dir) / "previews" / path.name).exists():
                path = Path(run_dir) / "previews" / path.name
        images.append({**item, "path": str(path)})
    return {**event, "images": images}


class EventBridge(QObject):
    """A listener for run_pretraining that re-emits every event as ``event(dict)``.

    The training thread only appends to a lock-protected deque; a timer in the
    GUI thread drains it. No Python object crosses threads inside a Qt signal
    (queued cross-thread signals carrying Python objects proved crash-prone),
    and a burst of fast steps costs the UI one wake-up per interval, not one per
    event.
    """

    event = Signal(dict)

    def __init__(self, run_dir: str | Path | None = None, parent: QObject | None = None,
                 interval_ms: int = 30) -> None:
        super().__init__(parent)
        self.run_dir = run_dir
        self._pending: deque[dict] = deque()
        self._lock = threading.Lock()
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.drain)
        self._timer.start()

    def __call__(self, event: dict) -> None:  # called in the training thread
        with self._lock:
            self._pending.append(dict(event))

    # Some listener protocols call a method rather than the object itself.
    on_event = __call__

    def drain(self) -> int:
        """Emit what the training thread queued (GUI thread); returns how many."""
        with self._lock:
            events = list(self._pending)
            self._pending.clear()
        for event in events:
            self.event.emit(resolve_preview_paths(event, self.run_dir))
        return len(events)

    def stop(self) -> None:
        """Deliver what is left and stop the timer (after the run ended)."""
        self.drain()
        self._timer.stop()


def read_events(run_dir: str | Path) -> list[dict]:
    """Every complete event of a run folder's metrics.jsonl (a torn last line is skipped)."""
    path = Path(run_dir) / METRICS_FILE
    events: list[dict] = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return events
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict):
            events.append(resolve_preview_paths(event, run_dir))
    return events


class RunFollower(QObject):
    """Follows a run folder live: polls metrics.jsonl and emits new events.

    Polling (every ``interval_ms``) is used rather than QFileSystemWatcher
    alone because watchers miss appends on some file systems (network drives)
    and stop watching a file that is replaced.
    """

    event = Signal(dict)
    finished = Signal(str)   # end status, once an "end" event is read

    def __init__(self, run_dir: str | Path, interval_ms: int = 250,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.run_dir = Path(run_dir)
        self._offset = 0
        self._partial = b""
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.poll)
        self.ended = False
        self.last_step = 0

    def start(self) -> None:
        self.poll()
        if not self.ended:
            self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def skip_existing(self) -> None:
        """Start after what the log holds now (for a run that will append to it)."""
        try:
            self._offset = (self.run_dir / METRICS_FILE).stat().st_size
        except OSError:
            self._offset = 0
        self._partial = b""

    def is_following(self) -> bool:
        return self._timer.isActive()

    def poll(self) -> int:
        """Read whatever was appended since the last poll; returns the number of new events."""
        path = self.run_dir / METRICS_FILE
        try:
            size = path.stat().st_size
        except OSError:
            return 0
        if size < self._offset:  # the file was rewritten (a restarted run): start over
            self._offset, self._partial = 0, b""
        if size == self._offset:
            return 0
        with open(path, "rb") as handle:
            handle.seek(self._offset)
            data = handle.read(size - self._offset)
        self._offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()  # an incomplete last line waits for the next poll
        count = 0
        for raw in lines:
            raw = raw.strip()
            if not raw:
                continue
            try:
                event = json.loads(raw.decode("utf-8", errors="replace"))
            except json.JSONDecodeError:
                continue
            if not isinstance(event, dict):
                continue
            count += 1
            if isinstance(event.get("step"), int):
                self.last_step = event["step"]
            self.event.emit(resolve_preview_paths(event, self.run_dir))
            if event.get("kind") == "end" and not self.ended:
                self.ended = True
                self._timer.stop()
                self.finished.emit(str(event.get("status", "completed")))
        return count
