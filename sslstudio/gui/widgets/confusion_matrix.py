"""Confusion matrix as a heat-map table; each cell knows the images behind it."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

CORRECT_RGB = (46, 125, 50)     # green for the diagonal
WRONG_RGB = (198, 40, 40)       # red for confusions


class ConfusionMatrixView(QTableWidget):
    """Rows = true class, columns = predicted class. Clicking a cell emits its images."""

    cell_opened = Signal(str, str, list)   # true class, predicted class, relpaths

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.classes: list[str] = []
        self.cells: dict[tuple[int, int], list[str]] = {}
        self.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SingleSelection)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.verticalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.setToolTip("Rows: true class · columns: predicted class. Click a cell to see its images.")
        self.cellClicked.connect(self._open_cell)

    def set_results(self, classes: list[str], truth: dict[str, str],
                    predicted: dict[str, str]) -> None:
        """Fill from relpath → true class and relpath → predicted class (validation images)."""
        self.classes = list(classes)
        index = {name: i for i, name in enumerate(self.classes)}
        self.cells = {}
        for relpath, true_class in truth.items():
            pred = predicted.get(relpath)
            if pred is None or true_class not in index or pred not in index:
                continue
            self.cells.setdefault((index[true_class], index[pred]), []).append(relpath)
        self._fill()

    def set_matrix(self, classes: list[str], matrix) -> None:
        """Counts only (no images known), e.g. from a saved model's metrics."""
        self.classes = list(classes)
        self.cells = {}
        self._counts = [[int(v) for v in row] for row in matrix]
        self._fill(counts=self._counts)

    def count(self, true_class: str, predicted: str) -> int:
        r, c = self.classes.index(true_class), self.classes.index(predicted)
        item = self.item(r, c)
        return int(item.text()) if item and item.text() else 0

    def total(self) -> int:
        return sum(self.count(t, p) for t in self.classes for p in self.classes)

    def _fill(self, counts=None) -> None:
        n = len(self.classes)
        self.clear()
        self.setRowCount(n)
        self.setColumnCount(n)
        # Plain names (no arrow) so they fit narrow columns; tooltips say which axis is which.
        self.setHorizontalHeaderLabels(self.classes)
        self.setVerticalHeaderLabels(self.classes)
        for i, name in enumerate(self.classes):
            self.horizontalHeaderItem(i).setToolTip(f"predicted {name}")
            self.verticalHeaderItem(i).setToolTip(f"true {name}")
        if counts is None:
            counts = [[len(self.cells.get((r, c), [])) for c in range(n)] for r in range(n)]
        for r in range(n):
            row_total = sum(counts[r]) or 1
            for c in range(n):
                value = counts[r][c]
                item = QTableWidgetItem(str(value))
                item.setTextAlignment(Qt.AlignCenter)
                share = value / row_total
                rgb = CORRECT_RGB if r == c else WRONG_RGB
                alpha = int(230 * share) if value else 0
                item.setBackground(QBrush(QColor(*rgb, alpha)))
                if share > 0.55:
                    item.setForeground(QBrush(QColor("white")))
                item.setToolTip(f"true {self.classes[r]}, predicted {self.classes[c]}: "
                                f"{value} image(s) ({share:.0%} of the row)")
                self.setItem(r, c, item)

    def _open_cell(self, row: int, col: int) -> None:
        if 0 <= row < len(self.classes) and 0 <= col < len(self.classes):
            self.cell_opened.emit(self.classes[row], self.classes[col],
                                  list(self.cells.get((row, col), [])))
