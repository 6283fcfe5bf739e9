"""Live training curves (pyqtgraph): loss raw + smoothed, task metrics, lr, images/s, memory.

Events arrive at whatever rate the engine produces them; they are only
appended to lists, and a timer redraws at most ``max_fps`` times a second so a
fast run never floods the event loop.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pyqtgraph as pg
from scipy.signal import lfilter  # imported up front: a lazy import stalled the first redraw
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget

def guard_singleton_refcounts() -> None:
    """Work around a PySide6 6.12 binding bug on Python < 3.12 (idempotent).

    When Qt calls a Python override (pyqtgraph's paint(), boundingRect()…) with
    a null pointer argument, the binding hands Python ``None`` without taking a
    reference and then releases one: every repaint of a plot lowers the
    reference count of None (and of True/False) by hundreds. After a few
    thousand repaints the count reaches zero and the interpreter aborts
    ("deallocating None"). Python 3.12 makes these singletons immortal; here we
    do the same by giving them a huge reference count once.
    """
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return
    import ctypes

    for singleton in (None, True, False):
        count = ctypes.c_ssize_t.from_address(id(singleton))  # ob_refcnt is the first field
        if count.value < 2 ** 40:
            count.value += 2 ** 42


guard_singleton_refcounts()

SMOOTHING = 0.9  # exponential moving average weight of the smoothed loss
COMPARE_COLORS = ("#e377c2", "#17becf")
METRIC_COLORS = ("#2ca02c", "#d62728", "#9467bd", "#8c564b", "#bcbd22")


def smooth(values: np.ndarray, weight: float = SMOOTHING) -> np.ndarray:
    """Bias-corrected exponential moving average (what TensorBoard's slider shows).

    Vectorised (an IIR filter), so a redraw of a long run stays cheap; non-finite
    values repeat the previous value rather than poisoning the average.
    """
    v = np.asarray(values, dtype=float).copy()
    if not len(v):
        return v
    bad = ~np.isfinite(v)
    if bad.any():
        idx = np.where(~bad, np.arange(len(v)), 0)
        np.maximum.accumulate(idx, out=idx)
        v = v[idx]
        if not np.isfinite(v[0]):
            v[~np.isfinite(v)] = np.nan
            return v
    avg = lfilter([1 - weight], [1, -weight], v)
    return avg / (1 - weight ** np.arange(1, len(v) + 1))


def format_eta(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "—"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {(seconds % 3600) // 60:02d} min"


class _Series:
    """x/y lists of one curve."""

    def __init__(self) -> None:
        self.x: list[float] = []
        self.y: list[float] = []

    def add(self, x: float, y: float) -> None:
        self.x.append(float(x))
        self.y.append(float(y))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.x, dtype=float), np.asarray(self.y, dtype=float)


class RunCurves:
    """The curves of one run, built from its event stream (no Qt)."""

    def __init__(self) -> None:
        self.loss = _Series()
        self.lr = _Series()
        self.speed = _Series()
        self.memory = _Series()
        self.metrics: dict[str, _Series] = {}
        self.quality: dict[str, _Series] = {}
        self.last_step: dict = {}
        self.last_quality: dict = {}

    def add(self, event: dict) -> bool:
        """Take one event; True when it changed a curve."""
        kind = event.get("kind")
        step = event.get("step", 0) or 0
        if kind == "step":
            self.last_step = event
            if event.get("loss") is not None:
                self.loss.add(step, event["loss"])
            if event.get("lr") is not None:
                self.lr.add(step, event["lr"])
            if event.get("images_per_s") is not None:
                self.speed.add(step, event["images_per_s"])
            if event.get("memory_mb") is not None:
                self.memory.add(step, event["memory_mb"])
            for name, value in (event.get("metrics") or {}).items():
                if isinstance(value, (int, float)):
                    self.metrics.setdefault(name, _Series()).add(step, value)
            return True
        if kind == "quality":
            self.last_quality = event
            for name in ("effective_rank", "knn_accuracy"):  # the two quality curves drawn
                if isinstance(event.get(name), (int, float)):
                    self.quality.setdefault(name, _Series()).add(step, event[name])
            return True
        return False

    @property
    def points(self) -> int:
        return len(self.loss.x)


class TrainingPlots(QWidget):
    """Loss (raw + smoothed), task metric / quality, lr, images/s, memory, and an ETA line."""

    def __init__(self, parent: QWidget | None = None, max_fps: float = 10.0) -> None:
        super().__init__(parent)
        self.curves = RunCurves()
        self._finished = False   # set when the run ends; the ETA label then keeps its status
        self._compare: dict[str, RunCurves] = {}
        self.redraws = 0
        self._side_turn = 0
        self._stale_sides: set[str] = set()
        self._loss_stale = False
        self._last_was_side = False

        self.summary = QLabel("No run yet.")
        self.summary.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.eta = QLabel("")
        self.eta.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(self.eta)

        pg.setConfigOptions(antialias=False)
        # One PlotWidget (its own scene) per plot: a live tick that changes two plots
        # repaints those two, not a shared scene whose layout reflows as labels widen.
        self.view = QWidget()
        self._grid = QGridLayout(self.view)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(2)
        self.loss_plot = self._plot("Loss", row=0, col=0)
        # Task metrics and kNN accuracy share a 0–1 scale; the effective rank (up to the
        # feature width) gets its own plot so neither squashes the other.
        # (a short title: the legend names the curves, and a long one was cut off at 1280 px)
        self.metric_plot = self._plot("Metrics (0–1)", row=0, col=1)
        # the title stays short enough for 1280 px; the tooltip says what the rank means
        self.rank_plot = self._plot("Effective rank", row=0, col=2)
        self._grid.itemAtPosition(0, 2).widget().setToolTip(
            "How many feature directions the backbone really uses, measured on unlabelled "
            "images: a rank that collapses towards 1 means the features carry little.")
        self.lr_plot = self._plot("Learning rate", row=1, col=0)
        self.speed_plot = self._plot("Images / s", row=1, col=1)
        self.memory_plot = self._plot("Memory (MB)", row=1, col=2)
        for col in range(3):
            self._grid.setColumnStretch(col, 1)
        self._grid.setRowStretch(0, 3)
        self._grid.setRowStretch(1, 2)
        self.loss_plot.addLegend(offset=(-5, 5))
        self.metric_plot.addLegend(offset=(-5, -5))   # bottom right: accuracies rise to the top
        self.raw_loss = self.loss_plot.plot(pen=pg.mkPen((31, 119, 180, 90), width=1),
                                            name="loss")
        self.smooth_loss = self.loss_plot.plot(pen=pg.mkPen("#1f77b4", width=2),
                                               name="smoothed")
        self.lr_curve = self.lr_plot.plot(pen=pg.mkPen("#ff7f0e", width=2))
        self.speed_curve = self.speed_plot.plot(pen=pg.mkPen("#2ca02c", width=2))
        self.memory_curve = self.memory_plot.plot(pen=pg.mkPen("#7f7f7f", width=2))
        self.rank_curve = self.rank_plot.plot(pen=pg.mkPen("#d62728", width=2), symbol="o",
                                              symbolSize=5, symbolBrush="#d62728")
        self._metric_items: dict[str, pg.PlotDataItem] = {}
        self._compare_items: list[pg.PlotDataItem] = []

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.view, 1)

        self._timer = QTimer(self)
        self._timer.setInterval(int(1000 / max_fps))
        self._timer.timeout.connect(self._redraw_if_dirty)
        self._timer.start()

    def _plot(self, title: str, row: int, col: int, colspan: int = 1) -> pg.PlotItem:
        widget = pg.PlotWidget(title=title)
        widget.setBackground(None)
        widget.setMinimumSize(120, 90)
        self._grid.addWidget(widget, row, col, 1, colspan)
        plot = widget.getPlotItem()
        # no grid lines: alpha-blended grids made each repaint ~4x slower (software
        # rendering), enough to stall the event loop past 50 ms during a run
        plot.setClipToView(True)
        plot.setDownsampling(auto=True, mode="peak")
        plot.getAxis("bottom").setLabel("step")
        return plot

    # ------------------------------------------------------------------ data in
    def clear(self) -> None:
        """Forget the curves; the loss empties now, the side plots over the next ticks."""
        self.curves = RunCurves()
        for item in self._metric_items.values():
            self.metric_plot.removeItem(item)
        self._metric_items.clear()
        self.summary.setText("Waiting for the first step…")
        self.eta.setText("")
        self._finished = False
        self._mark_all_stale()
        self._redraw(full=False)

    def _mark_all_stale(self) -> None:
        self._loss_stale = True
        self._stale_sides.update(self.SIDE_PLOTS)

    @property
    def _dirty(self) -> bool:
        """Some plot is behind the recorded curves."""
        return self._loss_stale or bool(self._stale_sides)

    def add_event(self, event: dict) -> None:
        """Cheap: record the event; the timer redraws later."""
        if self.curves.add(event):
            self._mark_all_stale()

    def set_events(self, events: list[dict]) -> None:
        self.clear()
        for event in events:
            self.curves.add(event)
        ended = [e for e in events if e.get("kind") == "end"]
        if ended:   # a finished run shows how it ended where a live one shows its ETA
            self.mark_finished(str(ended[-1].get("status", "completed")),
                               str(ended[-1].get("message") or ""))
        self._redraw()

    def set_comparison(self, runs: dict[str, list[dict]]) -> None:
        """Overlay the loss of other runs (name → events) on the loss plot."""
        if not runs and not self._compare:
            return  # nothing shown, nothing to show: no repaint
        self._compare = {}
        for name, events in runs.items():
            curves = RunCurves()
            for event in events:
                curves.add(event)
            self._compare[name] = curves
        self._redraw()

    # ------------------------------------------------------------------ drawing
    def _redraw_if_dirty(self) -> None:
        if self._dirty:
            self._redraw(full=False)

    # The plots beside the loss, refreshed one per live tick in turn (see _redraw).
    SIDE_PLOTS = ("metric", "rank", "lr", "speed", "memory")

    def _redraw(self, full: bool = True, loss_now: bool = False) -> None:
        """Push the recorded curves to the plots.

        Repainting all six plots costs ~45 ms in software rendering (axis ticks and
        auto-range, in Python), enough to freeze the window past 50 ms on a busy
        machine. So a live tick (``full=False``) refreshes one plot: the loss every
        other tick, the side plots in turn between (at the default 10 fps the loss
        updates 5 times a second, each side plot about once a second).
        """
        self.redraws += 1
        draw_loss = full or (self._loss_stale and (
            loss_now or self._last_was_side or not self._stale_sides))
        if full:
            groups = set(self.SIDE_PLOTS)
        elif draw_loss or not self._stale_sides:
            groups = set()
        else:  # the next side plot, in turn, that is behind the data
            order = self.SIDE_PLOTS[self._side_turn:] + self.SIDE_PLOTS[:self._side_turn]
            side = next(name for name in order if name in self._stale_sides)
            self._side_turn = (self.SIDE_PLOTS.index(side) + 1) % len(self.SIDE_PLOTS)
            groups = {side}
        self._last_was_side = bool(groups) and not full
        self._stale_sides -= groups
        c = self.curves
        if draw_loss:
            self._loss_stale = False
            x, y = c.loss.arrays()
            self.raw_loss.setData(x, y)
            self.smooth_loss.setData(x, smooth(y) if len(y) else y)
        if "lr" in groups:
            self.lr_curve.setData(*c.lr.arrays())
        if "speed" in groups:
            self.speed_curve.setData(*c.speed.arrays())
        if "memory" in groups:
            self.memory_curve.setData(*c.memory.arrays())
        if "rank" in groups:
            x, y = (c.quality["effective_rank"].arrays() if "effective_rank" in c.quality
                    else ([], []))
            self.rank_curve.setData(x, y)
            if len(x) == 1:   # auto-range would span step ±0.2 with fractional ticks
                self.rank_plot.setXRange(0, max(1.0, x[0]), padding=0.05)
            else:
                self.rank_plot.enableAutoRange(axis="x")
        if "metric" in groups:
            self._redraw_metrics()
        if full:
            self._redraw_comparison()
        self._update_labels()

    def _redraw_metrics(self) -> None:
        c = self.curves
        series = {**c.metrics, **{k: v for k, v in c.quality.items() if k == "knn_accuracy"}}
        for i, (name, values) in enumerate(series.items()):
            item = self._metric_items.get(name)
            if item is None:
                color = METRIC_COLORS[i % len(METRIC_COLORS)]
                item = self.metric_plot.plot(pen=pg.mkPen(color, width=2), name=name,
                                             symbol="o" if name in c.quality else None,
                                             symbolSize=5, symbolBrush=color)
                self._metric_items[name] = item
            item.setData(*values.arrays())

    def _redraw_comparison(self) -> None:
        for item in self._compare_items:
            self.loss_plot.removeItem(item)
        self._compare_items = []
        for i, (name, curves) in enumerate(self._compare.items()):
            cx, cy = curves.loss.arrays()
            if len(cy):
                pen = pg.mkPen(COMPARE_COLORS[i % len(COMPARE_COLORS)], width=2,
                               style=Qt.DashLine)
                item = self.loss_plot.plot(cx, smooth(cy), pen=pen, name=name)
                self._compare_items.append(item)

    def _update_labels(self) -> None:
        last = self.curves.last_step
        if not last:
            return
        progress = [f"step {last.get('step', 0)}"]
        if last.get("epoch") is not None:
            progress.append(f"epoch {last['epoch']}")
        if last.get("loss") is not None:
            progress.append(f"loss {last['loss']:.4g}")
        for name, value in (last.get("metrics") or {}).items():
            if isinstance(value, float):
                progress.append(f"{name} {value:.3g}")
        machine = []
        if last.get("images_per_s"):
            machine.append(f"{last['images_per_s']:.0f} img/s")
        if last.get("memory_mb"):
            machine.append(f"{last['memory_mb']:.0f} MB")
        quality = self.curves.last_quality
        if quality.get("knn_accuracy") is not None:
            machine.append(f"kNN {100 * quality['knn_accuracy']:.0f}%")
        if quality.get("effective_rank") is not None:
            dim = quality.get("feature_dim")
            machine.append(f"rank {quality['effective_rank']:.0f}" + (f"/{dim}" if dim else ""))
        # two fixed lines, not one clipped by the status beside it ("kNN 93% · ra") nor a
        # word-wrapped one whose height would follow the width and reflow the plots
        self.summary.setText("\n".join("   ·   ".join(line) for line in (progress, machine)
                                        if line))
        if not self._finished:    # an ended run keeps its status, not a stale "ETA 0 s"
            self.eta.setText(f"ETA {format_eta(last.get('eta_s'))}")

    def mark_finished(self, status: str, message: str = "") -> None:
        self._finished = True
        self._redraw(full=False, loss_now=True)  # the loss now, the side plots over the next ticks
        self.eta.setText(status + (f": {message}" if message and status != "completed" else ""))
