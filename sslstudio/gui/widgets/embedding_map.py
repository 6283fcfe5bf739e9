"""A 2-D map of the dataset's features: hover for a thumbnail, click for neighbours,
drag a box or a lasso to select a cluster.

The projection is PCA (numpy SVD of the centred features): deterministic,
dependency-free and fast enough for 100k points.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QFrame,
    QHBoxLayout,
    QLabel,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

UNLABELLED_COLOR = "#9a9a9a"
UNLABELLED_ALPHA = 110
FALLBACK_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                   "#e377c2", "#17becf", "#bcbd22", "#393b79")   # no grey: that is unlabelled


def project_2d(features: np.ndarray) -> np.ndarray:
    """N×D features → N×2 PCA coordinates (first two principal components)."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        return np.zeros((len(x), 2))
    x = x - x.mean(axis=0, keepdims=True)
    if len(x) == 1 or x.shape[1] == 1:
        out = np.zeros((len(x), 2))
        out[:, 0] = x[:, 0] if x.shape[1] else 0
        return out
    # SVD of the smaller side keeps this fast when N is large
    _, _, vt = np.linalg.svd(x if len(x) < 4096 else x[np.random.default_rng(0).choice(
        len(x), 4096, replace=False)], full_matrices=False)
    coords = x @ vt[:2].T
    if coords.shape[1] < 2:
        coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
    return coords


def nearest_neighbours(features: np.ndarray, index: int, k: int = 8) -> list[tuple[int, float]]:
    """k nearest rows to row ``index`` by cosine similarity (itself excluded)."""
    x = np.asarray(features, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.maximum(norms, 1e-12)
    sims = x @ x[index]
    sims[index] = -np.inf
    k = min(k, len(x) - 1)
    if k <= 0:
        return []
    top = np.argpartition(-sims, k - 1)[:k]
    top = top[np.argsort(-sims[top])]
    return [(int(i), float(sims[i])) for i in top]


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Boolean mask of points (N×2) inside a closed polygon (M×2), even-odd rule."""
    inside = np.zeros(len(points), dtype=bool)
    if len(polygon) < 3:
        return inside
    px, py = points[:, 0], points[:, 1]
    xs, ys = polygon[:, 0], polygon[:, 1]
    j = len(polygon) - 1
    for i in range(len(polygon)):
        crosses = (ys[i] > py) != (ys[j] > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = (xs[j] - xs[i]) * (py - ys[i]) / (ys[j] - ys[i]) + xs[i]
        inside ^= crosses & (px < x_at)
        j = i
    return inside


class _SelectViewBox(pg.ViewBox):
    """A ViewBox whose left-drag draws a box or a lasso instead of panning (in those modes)."""

    def __init__(self, on_shape: Callable[[np.ndarray], None]) -> None:
        super().__init__()
        self.mode = "pan"
        self._on_shape = on_shape
        self._path: list[QPointF] = []
        self._outline = pg.PlotCurveItem(pen=pg.mkPen("#ff4081", width=2, style=Qt.DashLine))
        self._outline.setZValue(100)
        self.addItem(self._outline, ignoreBounds=True)

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802 - Qt naming
        if self.mode == "pan" or ev.button() != Qt.LeftButton:
            return super().mouseDragEvent(ev, axis)
        ev.accept()
        pos = self.mapSceneToView(ev.scenePos())
        if ev.isStart():
            self._path = [self.mapSceneToView(ev.buttonDownScenePos())]
        if self.mode == "box":
            start = self._path[0]
            self._path = [start, QPointF(pos.x(), start.y()), pos, QPointF(start.x(), pos.y())]
        else:
            self._path.append(pos)
        closed = self._path + self._path[:1]
        self._outline.setData([p.x() for p in closed], [p.y() for p in closed])
        if ev.isFinish():
            polygon = np.array([[p.x(), p.y()] for p in self._path])
            self._outline.setData([], [])
            self._path = []
            self._on_shape(polygon)


class EmbeddingMap(QWidget):
    """Scatter plot of a 2-D projection with hover thumbnails, neighbours and selection."""

    point_clicked = Signal(str)                 # relpath
    neighbours_found = Signal(str, list)        # relpath, [(relpath, similarity)]
    selection_changed = Signal(list)            # relpaths

    def __init__(self, parent: QWidget | None = None,
                 thumbnail: Callable[[str], QPixmap | None] | None = None) -> None:
        super().__init__(parent)
        self.thumbnail = thumbnail
        self.relpaths: list[str] = []
        self.features = np.zeros((0, 0), dtype=np.float32)
        self.coords = np.zeros((0, 2))
        self.categories: dict[str, str] = {}
        self.category_colors: dict[str, str] = {}
        self.selected: list[str] = []
        self._highlight: list[int] = []
        self._index: dict[str, int] = {}

        self.viewbox = _SelectViewBox(self._select_shape)
        self.plot = pg.PlotWidget(viewBox=self.viewbox)
        self.plot.setBackground(None)
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.plot.setAspectLocked(False)
        # an opaque-ish box with dark text: the names stay readable over the grey points
        self.legend = self.plot.addLegend(offset=(5, 5), brush=pg.mkBrush(255, 255, 255, 225),
                                          pen=pg.mkPen(200, 200, 200), labelTextColor="#202020")
        self.scatter = pg.ScatterPlotItem(size=7, pen=pg.mkPen(None))
        self.plot.addItem(self.scatter)
        self.marks = pg.ScatterPlotItem(size=13, brush=pg.mkBrush(None),
                                        pen=pg.mkPen("#ff4081", width=2))
        self.marks.setZValue(50)
        self.plot.addItem(self.marks)
        self.scatter.sigClicked.connect(self._on_clicked)
        self.plot.scene().sigMouseMoved.connect(self._on_mouse_moved)

        self.hover = QLabel(self.plot)
        self.hover.setFrameShape(QFrame.StyledPanel)
        self.hover.setAutoFillBackground(True)
        self.hover.setAlignment(Qt.AlignCenter)
        self.hover.hide()

        modes = QHBoxLayout()
        modes.addWidget(QLabel("Mouse:"))
        self._mode_group = QButtonGroup(self)
        for mode, text, tip in (("pan", "Pan / zoom", "Drag to pan, wheel to zoom"),
                                ("box", "Box select", "Drag a rectangle to select points"),
                                ("lasso", "Lasso select", "Draw around a cluster to select it")):
            button = QRadioButton(text)
            button.setToolTip(tip)
            button.setChecked(mode == "pan")
            button.toggled.connect(lambda on, m=mode: on and self.set_mode(m))
            self._mode_group.addButton(button)
            modes.addWidget(button)
        modes.addStretch(1)
        self.info = QLabel("")
        modes.addWidget(self.info)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(modes)
        layout.addWidget(self.plot, 1)

    # ------------------------------------------------------------------ data
    def set_mode(self, mode: str) -> None:
        self.viewbox.mode = mode

    def set_data(self, relpaths: list[str], features: np.ndarray,
                 coords: np.ndarray | None = None) -> None:
        self.relpaths = list(relpaths)
        self.features = np.asarray(features, dtype=np.float32)
        self.coords = project_2d(self.features) if coords is None else np.asarray(coords)
        self._index = {r: i for i, r in enumerate(self.relpaths)}
        self.selected = []
        self._highlight = []
        self.marks.setData([], [])
        self._redraw()
        self.plot.autoRange()

    def set_categories(self, categories: dict[str, str],
                       colors: dict[str, str] | None = None) -> None:
        """Colour points by a category per relpath (label or prediction); others grey."""
        self.categories = dict(categories)
        names = sorted(set(self.categories.values()))
        colors = dict(colors or {})
        for i, name in enumerate(names):
            colors.setdefault(name, FALLBACK_COLORS[i % len(FALLBACK_COLORS)])
        self.category_colors = colors
        self._redraw()

    def _redraw(self) -> None:
        if not len(self.relpaths):
            self.scatter.setData([], [])
            self.info.setText("")
            return
        # unlabelled points first and faint, so the few coloured ones are drawn on top of
        # the crowd instead of under it
        named = np.array([bool(self.categories.get(r)) for r in self.relpaths])
        order = np.concatenate([np.flatnonzero(~named), np.flatnonzero(named)])
        brushes = []
        cache: dict[str, object] = {}
        for i in order:
            name = self.categories.get(self.relpaths[i])
            color = self.category_colors.get(name, UNLABELLED_COLOR) if name else UNLABELLED_COLOR
            key = (color, bool(name))
            if key not in cache:
                qcolor = QColor(color)
                qcolor.setAlpha(220 if name else UNLABELLED_ALPHA)
                cache[key] = pg.mkBrush(qcolor)
            brushes.append(cache[key])
        self.scatter.setData(x=self.coords[order, 0], y=self.coords[order, 1], brush=brushes,
                             data=order.tolist())
        self.legend.clear()
        for name in sorted(set(self.categories.values())):
            swatch = pg.ScatterPlotItem(size=9, brush=pg.mkBrush(self.category_colors[name]),
                                        pen=pg.mkPen(None))
            self.legend.addItem(swatch, name)
        self.info.setText(f"{len(self.relpaths)} images")

    # ------------------------------------------------------------------ interaction
    def _nearest_on_screen(self, scene_pos, max_px: float = 8.0) -> int | None:
        if not len(self.relpaths):
            return None
        view_pos = self.viewbox.mapSceneToView(scene_pos)
        px_w, px_h = self.viewbox.viewPixelSize()
        dx = (self.coords[:, 0] - view_pos.x()) / max(px_w, 1e-12)
        dy = (self.coords[:, 1] - view_pos.y()) / max(px_h, 1e-12)
        dist = dx * dx + dy * dy
        index = int(np.argmin(dist))
        return index if dist[index] <= max_px * max_px else None

    def _on_mouse_moved(self, scene_pos) -> None:
        index = self._nearest_on_screen(scene_pos)
        if index is None:
            self.hover.hide()
            return
        relpath = self.relpaths[index]
        pixmap = self.thumbnail(relpath) if self.thumbnail else None
        name = self.categories.get(relpath)
        text = relpath + (f"\n{name}" if name else "")
        if pixmap is not None and not pixmap.isNull():
            self.hover.setPixmap(pixmap.scaled(96, 96, Qt.KeepAspectRatio,
                                               Qt.SmoothTransformation))
            self.hover.setToolTip(text)
            self.plot.setToolTip(text)
        else:
            self.hover.setText(text)
        self.hover.adjustSize()
        pos = self.plot.mapFromScene(scene_pos)
        x = min(pos.x() + 14, max(0, self.plot.width() - self.hover.width()))
        y = min(pos.y() + 14, max(0, self.plot.height() - self.hover.height()))
        self.hover.move(int(x), int(y))
        self.hover.show()
        self.hover.raise_()

    def _on_clicked(self, _item, points, _ev=None) -> None:
        if len(points):
            self.show_neighbours(self.relpaths[int(points[0].data())])

    def show_neighbours(self, relpath: str, k: int = 8) -> list[tuple[str, float]]:
        """Mark ``relpath`` and its k nearest neighbours (feature space) and announce them."""
        index = self._index.get(relpath)
        if index is None:
            return []
        found = nearest_neighbours(self.features, index, k)
        self._highlight = [index] + [i for i, _ in found]
        self.marks.setData(x=self.coords[self._highlight, 0], y=self.coords[self._highlight, 1])
        result = [(self.relpaths[i], sim) for i, sim in found]
        self.point_clicked.emit(relpath)
        self.neighbours_found.emit(relpath, result)
        return result

    def _select_shape(self, polygon: np.ndarray) -> None:
        if not len(self.relpaths):
            return
        mask = points_in_polygon(self.coords, polygon)
        self.select_indices(np.flatnonzero(mask).tolist())

    def select_indices(self, indices: list[int]) -> None:
        self.selected = [self.relpaths[i] for i in indices]
        self._highlight = list(indices)
        self.marks.setData(x=self.coords[indices, 0] if indices else [],
                           y=self.coords[indices, 1] if indices else [])
        self.selection_changed.emit(list(self.selected))
