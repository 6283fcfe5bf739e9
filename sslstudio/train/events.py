"""Run events and their listeners.

An event is a plain JSON-able dict ``{"kind", "step", "time", ...}`` (see
docs/architecture.md), so one stream serves a GUI thread, a console run and a
torchrun run whose ``metrics.jsonl`` is tailed by the GUI. A listener is any
callable taking one event.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

from sslstudio.plural import count

Event = dict[str, Any]
Listener = Callable[[Event], None]

KINDS = ("start", "cache", "step", "quality", "preview", "checkpoint", "warning", "end", "error")


def make_event(kind: str, step: int, **fields: Any) -> Event:
    return {"kind": kind, "step": int(step), "time": time.time(), **fields}


def error_message(exc: BaseException) -> str:
    """The part of an exception a user can read: its message, or its type when it has none."""
    text = str(exc).strip()
    if isinstance(exc, KeyError) and text.startswith(("'", '"')) and len(exc.args) == 1:
        text = str(exc.args[0])
    return text or type(exc).__name__


def json_safe(value: Any) -> Any:
    """NaN/inf are not JSON; write them as null so every line stays parseable."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


class EventStream:
    """Fans one event out to every listener; a failing listener is reported once, not fatal."""

    def __init__(self, listeners: Iterable[Listener] = ()) -> None:
        self.listeners = list(listeners)
        self._broken: set[int] = set()

    def emit(self, kind: str, step: int, **fields: Any) -> Event:
        event = make_event(kind, step, **fields)
        for index, listener in enumerate(self.listeners):
            try:
                listener(event)
            except Exception as exc:  # noqa: BLE001 - a display problem must not kill a run
                if index not in self._broken:
                    self._broken.add(index)
                    warnings.warn(f"event listener {listener!r} failed: {exc}", stacklevel=2)
        return event


class JsonlWriter:
    """Appends each event as one JSON line to RUN_DIR/metrics.jsonl, flushed at once."""

    def __init__(self, path: str | Path, *, append: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._file: TextIO | None = open(self.path, "a" if append else "w", encoding="utf-8")

    def __call__(self, event: Event) -> None:
        line = json.dumps(json_safe(event), default=str)
        with self._lock:
            if self._file is None:
                return
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def format_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "--:--"
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class ConsoleProgress:
    """A one-line progress bar on stderr, redrawn with carriage returns (no dependency)."""

    def __init__(self, stream: TextIO | None = None, width: int = 24, min_interval: float = 0.2):
        self.stream = stream or sys.stderr
        self.width = width
        self.min_interval = min_interval
        self.total_steps: int | None = None
        self._last_draw = 0.0
        self._line_open = False
        self.shown_error: str | None = None  # the last error message printed (not repeated)
        self.started = False                 # a "start" event came: training began

    def _bar(self, fraction: float) -> str:
        filled = int(round(self.width * min(1.0, max(0.0, fraction))))
        return "#" * filled + "." * (self.width - filled)

    def _draw(self, text: str) -> None:
        self.stream.write("\r" + text.ljust(100)[:140])
        self.stream.flush()
        self._line_open = True

    def _print(self, text: str) -> None:
        if self._line_open:
            self.stream.write("\n")
            self._line_open = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def __call__(self, event: Event) -> None:
        kind = event.get("kind")
        now = time.monotonic()
        if kind == "start":
            self.started = True
            self.total_steps = event.get("total_steps")
            config = event.get("config") or {}
            if self.total_steps:
                plan = f"{self.total_steps} steps planned"
            elif config.get("minutes"):
                plan = (f"{config['minutes']:g} min budget (steps planned after timing the "
                        "first ones)")
            else:
                plan = "steps planned after timing the first ones"
            resumed = event.get("resumed_from")
            images = count(int(event.get("dataset_size") or 0), "image")
            self._print(f"{'resuming' if resumed is not None else 'pretraining'} "
                        f"{event.get('task')} on {images} "
                        f"({event.get('device')}"
                        + (f", {event['amp']} mixed precision" if event.get("amp") else "")
                        + f"), {plan}"
                        + (f", from step {resumed}" if resumed is not None else ""))
        elif kind == "cache":
            total = event.get("total") or 0
            done = event.get("done") or 0
            if now - self._last_draw >= self.min_interval or done >= total:
                self._last_draw = now
                self._draw(f"decoding [{self._bar(done / total if total else 1)}] {done}/{total}")
        elif kind == "step":
            self.total_steps = event.get("total_steps", self.total_steps)
            if now - self._last_draw < self.min_interval and event.get("step") != self.total_steps:
                return
            self._last_draw = now
            step, total = event.get("step", 0), self.total_steps or 0
            metrics = " ".join(f"{k} {v:.3f}" for k, v in (event.get("metrics") or {}).items()
                               if isinstance(v, (int, float)))
            loss = event.get("loss")
            loss_text = f"loss {loss:.4f}" if isinstance(loss, (int, float)) else "loss ?"
            position = f"{step}/{total}" if total else f"{step} (timing)"
            self._draw(f"[{self._bar(step / total if total else 0)}] {position} {loss_text} "
                       f"{metrics} {event.get('images_per_s', 0):.0f} img/s "
                       f"ETA {format_duration(event.get('eta_s'))}")
        elif kind == "quality":
            parts = [f"effective rank {event.get('effective_rank', 0):.1f}",
                     f"feature std min {event.get('feature_std_min', 0):.3f}"]
            if event.get("knn_accuracy") is not None:
                parts.append(f"kNN accuracy {event['knn_accuracy']:.3f}")
            self._print(f"step {event.get('step')}: " + ", ".join(parts))
        elif kind in ("warning", "error"):
            self._print(f"{kind}: {event.get('message')}")
            if kind == "error":
                self.shown_error = event.get("message")
        elif kind == "end":
            message = event.get("message") or ""
            if message and message == self.shown_error:
                message = ""  # printed just above with the error
            if not message and not self.started:
                return  # a setting was refused before training began: the error says it all
            self._print(f"{event.get('status')} at step {event.get('step')}"
                        + (f": {message}" if message else ""))
