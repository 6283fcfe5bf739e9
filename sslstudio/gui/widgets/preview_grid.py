"""Pretext previews: the latest set shown live, earlier sets browsable with a step slider."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSlider,
    QVBoxLayout,
    QWidget,
)


MIN_COLUMN_WIDTH = 260  # px; below this a preview's captions and cells are unreadable


def array_to_pixmap(image: np.ndarray) -> QPixmap:
    """H×W×3 uint8 RGB → QPixmap (copied, so the array may go away)."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    h, w = image.shape[:2]
    qimage = QImage(image.data, w, h, 3 * w, QImage.Format_RGB888)
    return QPixmap.fromImage(qimage.copy())


@dataclass
class PreviewSet:
    step: int
    items: list[tuple[str, str | np.ndarray]]  # (title, PNG path or RGB array)


class PreviewGrid(QWidget):
    """Shows one preview set at a time; ``add_set`` keeps history for the slider."""

    set_shown = Signal(int)  # the step of the set now on screen

    def __init__(self, parent: QWidget | None = None, columns: int = 2) -> None:
        super().__init__(parent)
        self.columns = columns
        self.sets: list[PreviewSet] = []
        self._pixmaps: list[QPixmap] = []

        self.slider = QSlider(Qt.Horizontal)
        self.slider.setEnabled(False)
        self.slider.valueChanged.connect(self._show_index)
        self.step_label = QLabel("No previews yet: they appear while a run trains.")
        self.follow = QCheckBox("Follow latest")
        self.follow.setChecked(True)
        self.follow.setToolTip("Jump to each new preview as the run produces it")
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Step"))
        bar.addWidget(self.slider, 1)
        bar.addWidget(self.follow)

        self._inner = QWidget()
        self._grid = QGridLayout(self._inner)
        self._grid.setAlignment(Qt.AlignTop | Qt.AlignLeft)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self._inner)
        self._scroll = scroll
        # Re-fit the pictures to the panel after a resize (debounced: a drag resizes often).
        self._refit = QTimer(self)
        self._refit.setSingleShot(True)
        self._refit.setInterval(120)
        self._refit.timeout.connect(lambda: self._show_index(self.slider.value()))

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.step_label)
        layout.addWidget(scroll, 1)
        self._labels: list[tuple[QLabel, QLabel]] = []

    # ------------------------------------------------------------------ data
    def clear(self) -> None:
        self.sets = []
        self.slider.setEnabled(False)
        self.slider.setRange(0, 0)
        self._render([])
        self.step_label.setText("No previews yet: they appear while a run trains.")

    def add_event(self, event: dict) -> None:
        """A ``preview`` event from a run: images [{"title", "path"}]."""
        if event.get("kind") != "preview":
            return
        items = [(img.get("title", ""), img.get("path", "")) for img in event.get("images", [])]
        if items:
            self.add_set(PreviewSet(int(event.get("step", 0) or 0), items))

    def add_set(self, preview: PreviewSet) -> None:
        self.sets.append(preview)
        was_last = self.slider.value() >= len(self.sets) - 2
        self.slider.setEnabled(len(self.sets) > 1)
        self.slider.blockSignals(True)
        self.slider.setRange(0, len(self.sets) - 1)
        self.slider.blockSignals(False)
        if self.follow.isChecked() or was_last or len(self.sets) == 1:
            self.slider.setValue(len(self.sets) - 1)
            self._show_index(len(self.sets) - 1)

    def current_step(self) -> int | None:
        if not self.sets:
            return None
        return self.sets[self.slider.value()].step

    def shown_count(self) -> int:
        return len(self._pixmaps)

    # ------------------------------------------------------------------ drawing
    def _show_index(self, index: int) -> None:
        if not (0 <= index < len(self.sets)):
            return
        preview = self.sets[index]
        self.step_label.setText(f"Step {preview.step}  ({index + 1}/{len(self.sets)})")
        self._render(preview.items)
        self.set_shown.emit(preview.step)

    def _render(self, items: list[tuple[str, str | np.ndarray]]) -> None:
        while self._grid.count():
            widget = self._grid.takeAt(0).widget()
            if widget is not None:
                widget.hide()  # at once: deleteLater waits for the event loop, and until then
                widget.deleteLater()  # the old pictures would still paint under the new ones
        self._pixmaps = []
        available = self._scroll.viewport().width() if self.isVisible() else self.width()
        # as many columns as fit at a readable width (a narrow panel stacks the pictures)
        columns = max(1, min(self.columns, len(items), available // MIN_COLUMN_WIDTH))
        for i, (title, source) in enumerate(items):
            if isinstance(source, np.ndarray):
                pixmap = array_to_pixmap(source)
            else:
                pixmap = QPixmap(str(source)) if Path(str(source)).exists() else QPixmap()
            caption = QLabel(f"<b>{title}</b>")
            caption.setWordWrap(True)
            picture = QLabel()
            picture.setAlignment(Qt.AlignLeft | Qt.AlignTop)
            if pixmap.isNull():
                picture.setText(f"(missing image: {Path(str(source)).name})")
            else:
                # previews are small grids of small images: show them crisp and larger,
                # but never wider than the panel (no sideways scrolling)
                column_width = max(120, (available - 8) // columns - 16)
                if pixmap.width() > column_width:
                    pixmap = pixmap.scaledToWidth(column_width, Qt.SmoothTransformation)
                elif pixmap.width() < column_width // 2:
                    factor = max(1, column_width // max(pixmap.width(), 1))
                    pixmap = pixmap.scaled(pixmap.width() * factor, pixmap.height() * factor,
                                           Qt.KeepAspectRatio, Qt.FastTransformation)
                picture.setPixmap(pixmap)
                self._pixmaps.append(pixmap)
            row, col = divmod(i, columns)
            box = QWidget()
            box_layout = QVBoxLayout(box)
            box_layout.setContentsMargins(4, 4, 4, 4)
            box_layout.addWidget(caption)
            box_layout.addWidget(picture)
            self._grid.addWidget(box, row, col)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        if self.sets:
            self._refit.start()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        if self.sets:  # rendered while hidden: fit to the real width now
            self._refit.start()
