"""A virtualised thumbnail gallery: a list model over relpaths, a painting delegate, a view.

Nothing is created per image up front: the model holds the relpaths (one list)
and labels (one dict), the delegate paints straight from the thumbnail cache,
and the view asks the loader only for the rows it shows. The view uses
QListView's list mode with left-to-right wrapping (what IconMode looks like),
because IconMode keeps a rectangle per item and lays out 100,000 items slowly.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QAbstractListModel, QModelIndex, QRect, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QPainter, QPalette, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QListView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

from sslstudio.gui.widgets.thumbnails import ThumbnailLoader

RelpathRole = Qt.ItemDataRole.UserRole + 1
LabelRole = Qt.ItemDataRole.UserRole + 2
PredictionRole = Qt.ItemDataRole.UserRole + 3

CELL = QSize(132, 150)       # thumbnail box plus a tag line
TAG_HEIGHT = 18
LAYOUT_BATCH = 5000
PREFETCH_ROWS = 2            # rows below the visible area decoded ahead

def loader_for(ctx) -> ThumbnailLoader | None:
    """The thumbnail loader of the context's open project, shared by all its galleries.

    It is a child of the context, which stops it on shutdown (its pool threads
    must not outlive the application).
    """
    store = ctx.store
    loader = getattr(ctx, "thumbnail_loader", None)
    if store is None:
        return None
    thumbs = Path(getattr(store, "thumbnails_dir", Path(store.project_dir) / "thumbnails"))
    if loader is not None and (loader.cache_dir, loader.image_root) == (
            thumbs, Path(store.image_root)):
        return loader
    if loader is not None:
        loader.shutdown()
        loader.deleteLater()
    loader = ThumbnailLoader(Path(store.image_root), thumbs, parent=ctx)
    ctx.thumbnail_loader = loader
    return loader


def readable_text_color(background: QColor) -> QColor:
    return QColor("#000000") if background.lightnessF() > 0.6 else QColor("#ffffff")


class GalleryModel(QAbstractListModel):
    """Rows are relpaths; labels, class colours and predictions decorate them.

    Changes of decoration (thumbnail arrived, label set) are announced with
    ``repaint_rows`` rather than ``dataChanged``: QListView answers any
    dataChanged with a full relayout (a rowCount call per row, ~0.1 s at
    100,000 rows), while the delegate reads the decorations straight from here.
    """

    repaint_rows = Signal(object)     # list of rows, or None for every row
    thumbnail_ready = Signal(str)     # relpath (the view knows whether it is on screen)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.relpaths: list[str] = []
        self._rows: dict[str, int] = {}
        self.labels: dict[str, str] = {}
        self.colors: dict[str, str] = {}
        self.predictions: dict[str, tuple[str, float]] = {}
        self.loader: ThumbnailLoader | None = None

    # ------------------------------------------------------------------ contents
    def set_loader(self, loader: ThumbnailLoader | None) -> None:
        if self.loader is not None:
            try:
                self.loader.ready.disconnect(self._thumbnail_ready)
            except (RuntimeError, TypeError):
                pass
        self.loader = loader
        if loader is not None:
            loader.ready.connect(self._thumbnail_ready)

    def set_relpaths(self, relpaths: list[str]) -> None:
        self.beginResetModel()
        self.relpaths = list(relpaths)
        self._rows = {}        # built on first lookup: painting never needs it
        self.endResetModel()

    def row_of(self, relpath: str) -> int:
        """Row of a relpath (builds a 100k-entry dict on first use: not for the paint path)."""
        if not self._rows and self.relpaths:
            self._rows = {r: i for i, r in enumerate(self.relpaths)}
        return self._rows.get(relpath, -1)

    def set_labels(self, labels: dict[str, str], colors: dict[str, str]) -> None:
        self.labels, self.colors = dict(labels), dict(colors)
        self._all_changed()

    def update_labels(self, changes: dict[str, str | None]) -> None:
        for relpath, name in changes.items():
            if name is None:
                self.labels.pop(relpath, None)
            else:
                self.labels[relpath] = name
        self.repaint_rows.emit(None)     # changed rows are selected, hence on screen

    def set_predictions(self, predictions: dict[str, tuple[str, float]]) -> None:
        self.predictions = dict(predictions or {})
        self._all_changed()

    def _all_changed(self) -> None:
        self.repaint_rows.emit(None)

    def _thumbnail_ready(self, relpath: str) -> None:
        self.thumbnail_ready.emit(relpath)

    # ------------------------------------------------------------------ Qt model API
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.relpaths)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        relpath = self.relpaths[index.row()]
        if role == RelpathRole:
            return relpath
        if role == Qt.ItemDataRole.DisplayRole:
            return relpath.rsplit("/", 1)[-1]
        if role == LabelRole:
            return self.labels.get(relpath)
        if role == PredictionRole:
            return self.predictions.get(relpath)
        if role == Qt.ItemDataRole.DecorationRole:
            return self.loader.pixmap(relpath) if self.loader is not None else None
        if role == Qt.ItemDataRole.ToolTipRole:
            parts = [relpath]
            label = self.labels.get(relpath)
            if label:
                parts.append(f"label: {label}")
            prediction = self.predictions.get(relpath)
            if prediction:
                parts.append(f"predicted: {prediction[0]} ({prediction[1]:.0%})")
            if self.loader is not None and relpath in self.loader.broken:
                parts.append(f"cannot be shown: {self.loader.broken[relpath]}")
            return "\n".join(parts)
        return None

    def flags(self, index: QModelIndex):
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable


class GalleryDelegate(QStyledItemDelegate):
    """Paints a thumbnail (or a placeholder), and the label as a coloured tag."""

    def sizeHint(self, option, index) -> QSize:  # noqa: N802
        view = self.parent()
        return view.gridSize() if isinstance(view, QListView) else CELL

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        model: GalleryModel = index.model()
        relpath = model.relpaths[index.row()]
        rect: QRect = option.rect.adjusted(3, 3, -3, -3)
        palette: QPalette = option.palette
        painter.save()
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        if selected:
            # a tinted cell and a frame: the thumbnail covers most of the cell
            highlight = palette.color(QPalette.ColorRole.Highlight)
            tint = QColor(highlight)
            tint.setAlpha(70)
            painter.fillRect(rect, tint)
            painter.setPen(QPen(highlight, 3))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(rect.adjusted(1, 1, -1, -1))
        elif option.state & QStyle.StateFlag.State_MouseOver:
            painter.fillRect(rect, palette.color(QPalette.ColorRole.AlternateBase))
        image_rect = QRect(rect.left() + 2, rect.top() + 2, rect.width() - 4,
                           rect.height() - TAG_HEIGHT - 6)
        pixmap = model.loader.pixmap(relpath) if model.loader is not None else None
        if pixmap is not None and not pixmap.isNull():
            size = pixmap.size().scaled(image_rect.size(), Qt.AspectRatioMode.KeepAspectRatio)
            target = QRect(0, 0, size.width(), size.height())
            target.moveCenter(image_rect.center())
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            painter.drawPixmap(target, pixmap)
        else:
            broken = model.loader is not None and relpath in model.loader.broken
            self._placeholder(painter, image_rect, palette, broken)
        tag_rect = QRect(rect.left() + 2, rect.bottom() - TAG_HEIGHT - 1, rect.width() - 4,
                         TAG_HEIGHT)
        label = model.labels.get(relpath)
        if label:
            color = QColor(model.colors.get(label, "#888888"))
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(color)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.drawRoundedRect(tag_rect, 4, 4)
            painter.setPen(readable_text_color(color))
            text = label
        else:
            prediction = model.predictions.get(relpath)
            painter.setPen(palette.color(QPalette.ColorRole.Text))
            if prediction:
                font = QFont(painter.font())
                font.setItalic(True)
                painter.setFont(font)
                text = f"{prediction[0]}? {prediction[1]:.0%}"
            else:
                text = relpath.rsplit("/", 1)[-1]
        elided = painter.fontMetrics().elidedText(text, Qt.TextElideMode.ElideMiddle,
                                                  tag_rect.width() - 6)
        painter.drawText(tag_rect, Qt.AlignmentFlag.AlignCenter, elided)
        painter.restore()

    @staticmethod
    def _placeholder(painter: QPainter, rect: QRect, palette: QPalette, broken: bool) -> None:
        side = min(rect.width(), rect.height()) - 16
        box = QRect(0, 0, side, side)
        box.moveCenter(rect.center())
        base = palette.color(QPalette.ColorRole.Mid)
        if broken:
            painter.setPen(QPen(QColor("#d9534f"), 2))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(box)
            painter.drawLine(box.topLeft(), box.bottomRight())
            painter.drawLine(box.topRight(), box.bottomLeft())
        else:
            fill = QColor(base)
            fill.setAlpha(60)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QBrush(fill))
            painter.drawRect(box)


class GalleryView(QListView):
    """The list view configured for a large, uniform grid; requests only visible thumbnails."""

    current_relpath_changed = Signal(object)     # str or None

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.ListMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(True)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setUniformItemSizes(True)
        self.setMovement(QListView.Movement.Static)
        self.setGridSize(CELL)
        self.setSpacing(0)
        # Lay out big models a slice at a time, so the first screen paints at once.
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(LAYOUT_BATCH)
        self.setMouseTracking(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.verticalScrollBar().setSingleStep(CELL.height() // 3)
        # always there: a scroll bar that comes and goes would change the width, the
        # cell size and the layout in a loop
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        self.setItemDelegate(GalleryDelegate(self))
        self._requested: dict[str, int] = {}     # relpath → row of what we asked the loader for
        self._request_timer = QTimer(self)
        self._request_timer.setSingleShot(True)
        self._request_timer.setInterval(15)
        self._request_timer.timeout.connect(self.request_visible)
        self.verticalScrollBar().valueChanged.connect(self._schedule_requests)

    def setModel(self, model) -> None:  # noqa: N802
        super().setModel(model)
        model.modelReset.connect(self._schedule_requests)
        if isinstance(model, GalleryModel):
            model.repaint_rows.connect(self._repaint_rows)
            model.thumbnail_ready.connect(self._thumbnail_ready)
        model.rowsInserted.connect(self._schedule_requests)
        self.selectionModel().currentChanged.connect(self._current_changed)
        self._schedule_requests()

    def _thumbnail_ready(self, relpath: str) -> None:
        row = self._requested.get(relpath)
        if row is not None:
            self.viewport().update(self.visualRect(self.model().index(row)))

    def _repaint_rows(self, rows) -> None:
        if rows is None or len(rows) > 64:
            self.viewport().update()
            return
        for row in rows:
            self.viewport().update(self.visualRect(self.model().index(row)))

    def gallery_model(self) -> GalleryModel:
        return self.model()

    def _schedule_requests(self, *args) -> None:
        if not self._request_timer.isActive():
            self._request_timer.start()

    def resizeEvent(self, event) -> None:  # noqa: N802
        # Stretch the cells so the columns fill the width (no ragged empty band on the right).
        width = max(1, self.viewport().width())
        columns = max(1, width // CELL.width())
        cell = QSize(width // columns, CELL.height())
        if cell != self.gridSize():
            self.setGridSize(cell)
        super().resizeEvent(event)
        self._schedule_requests()

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        self._schedule_requests()

    def visible_rows(self) -> range:
        """First to last row on screen (the flow is row-major, so everything between is visible)."""
        model = self.model()
        if model is None or model.rowCount() == 0:
            return range(0)
        viewport = self.viewport().rect()
        first = self.indexAt(viewport.topLeft() + _offset(4, 4))
        first_row = first.row() if first.isValid() else 0
        per_row = max(1, viewport.width() // self.gridSize().width())
        rows_on_screen = viewport.height() // CELL.height() + 2
        last_row = min(model.rowCount(), first_row + per_row * rows_on_screen)
        return range(first_row, last_row)

    def request_visible(self) -> None:
        model = self.model()
        if not isinstance(model, GalleryModel) or model.loader is None or not self.isVisible():
            return
        rows = self.visible_rows()
        per_row = max(1, self.viewport().width() // self.gridSize().width())
        ahead = range(rows.stop, min(model.rowCount(), rows.stop + per_row * PREFETCH_ROWS))
        self._requested = {model.relpaths[r]: r for r in (*rows, *ahead)}
        model.loader.want(list(self._requested))

    def selected_relpaths(self) -> list[str]:
        model = self.model()
        rows = sorted(index.row() for index in self.selectionModel().selectedIndexes())
        return [model.relpaths[r] for r in rows]

    def current_relpath(self) -> str | None:
        index = self.currentIndex()
        return self.model().relpaths[index.row()] if index.isValid() else None

    def _current_changed(self, current: QModelIndex, previous: QModelIndex) -> None:
        self.current_relpath_changed.emit(
            self.model().relpaths[current.row()] if current.isValid() else None)


def _offset(x: int, y: int):
    from PySide6.QtCore import QPoint

    return QPoint(x, y)
