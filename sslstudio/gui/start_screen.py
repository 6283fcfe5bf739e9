"""The start screen: recent projects, the sample dataset one click away, open a folder."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

INTRO = ("Turn a folder of unlabelled images into an image classifier with very few labels: "
         "pretrain a backbone without labels, label a handful of images, train, export.")


class StartScreen(QWidget):
    open_folder_requested = Signal()
    open_sample_requested = Signal()
    open_project_requested = Signal(object)   # Path of a project folder

    def __init__(self, ctx, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        outer = QHBoxLayout(self)
        outer.addStretch(1)
        column = QVBoxLayout()
        column.setSpacing(14)
        outer.addLayout(column, 4)
        outer.addStretch(1)

        column.addStretch(1)
        title = QLabel("<h1>SSL Studio</h1>")
        intro = QLabel(INTRO)
        intro.setWordWrap(True)
        column.addWidget(title)
        column.addWidget(intro)

        buttons = QHBoxLayout()
        self.sample_button = self._big_button(
            "Open the sample dataset", "Generated shapes and textures, ready to try everything")
        self.sample_button.setDefault(True)
        self.folder_button = self._big_button("Open a folder…",
                                              "Any folder of images; sub-folders included")
        self.sample_button.clicked.connect(self.open_sample_requested.emit)
        self.folder_button.clicked.connect(self.open_folder_requested.emit)
        buttons.addWidget(self.sample_button)
        buttons.addWidget(self.folder_button)
        column.addLayout(buttons)

        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        column.addWidget(line)
        column.addWidget(QLabel("<b>Recent projects</b>"))
        self.recent_list = QListWidget()
        self.recent_list.setObjectName("recentProjects")
        self.recent_list.setMinimumHeight(160)
        self.recent_list.itemActivated.connect(self._activate)
        column.addWidget(self.recent_list, 2)
        hint = QLabel("Tip: drop a folder anywhere on the window to open it.")
        hint.setStyleSheet("color: palette(mid);")
        column.addWidget(hint)
        column.addStretch(1)
        self.refresh()

    @staticmethod
    def _big_button(text: str, hint: str) -> QPushButton:
        button = QPushButton(f"{text}\n{hint}")
        button.setMinimumSize(QSize(260, 72))
        button.setToolTip(hint)
        button.setStyleSheet("QPushButton { text-align: left; padding: 10px 14px; }")
        return button

    def refresh(self) -> None:
        self.recent_list.clear()
        recent = self.ctx.settings.recent_projects()
        for project_dir in recent:
            item = QListWidgetItem(f"{project_dir.name}    —    {project_dir}")
            item.setData(Qt.ItemDataRole.UserRole, str(project_dir))
            item.setToolTip("Double-click or press Enter to open")
            self.recent_list.addItem(item)
        if not recent:
            item = QListWidgetItem("No projects yet: open the sample dataset or a folder.")
            item.setFlags(Qt.ItemFlag.NoItemFlags)
            self.recent_list.addItem(item)

    def _activate(self, item: QListWidgetItem) -> None:
        path = item.data(Qt.ItemDataRole.UserRole)
        if path:
            self.open_project_requested.emit(Path(path))
