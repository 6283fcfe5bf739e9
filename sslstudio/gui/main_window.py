"""The main window: a workflow sidebar, one page per step, a status bar.

Page contract (for page authors):

* a page is ``class XPage(QWidget)`` with a class attribute ``title`` and
  ``__init__(self, ctx: AppContext, parent=None)``; it reads ``ctx.store`` and
  listens to ``ctx.project_changed`` / ``ctx.labels_changed`` (see context.py).
* pages are created lazily, the first time they are shown (``MainWindow.page``),
  so their imports (pyqtgraph, torch...) never slow the start-up. A page module
  that fails to import shows a "coming soon" placeholder naming the error.
* a page may define ``on_shown()``; the window calls it each time the page is shown.
"""

from __future__ import annotations

import importlib
import os
import traceback
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QProgressDialog,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from sslstudio import paths
from sslstudio.gui.context import AppContext

# (title, module, class); the order is the workflow.
PAGES: list[tuple[str, str, str]] = [
    ("Data", "sslstudio.gui.pages.data_page", "DataPage"),
    ("Pretrain", "sslstudio.gui.pages.pretrain_page", "PretrainPage"),
    ("Inspect", "sslstudio.gui.pages.inspect_page", "InspectPage"),
    ("Label", "sslstudio.gui.pages.label_page", "LabelPage"),
    ("Classifier", "sslstudio.gui.pages.classifier_page", "ClassifierPage"),
    ("Export", "sslstudio.gui.pages.export_page", "ExportPage"),
]
PAGE_TITLES = [title for title, _, _ in PAGES]
PAGE_HINTS = {
    "Data": "Open an image folder and look at it",
    "Pretrain": "Self-supervised pretraining, no labels needed",
    "Inspect": "What the model learned: previews and a map",
    "Label": "Give a few images a class",
    "Classifier": "Train and evaluate a classifier",
    "Export": "Save the classifier for use elsewhere",
}
SAMPLE_PER_CLASS_ENV = "SSLSTUDIO_SAMPLE_PER_CLASS"


class PlaceholderPage(QWidget):
    """Stands in for a page whose module is not ready (or failed to import)."""

    def __init__(self, title: str, reason: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        heading = QLabel(f"<h2>{title}</h2><p>This page is coming soon.</p>")
        heading.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(heading)
        if reason:
            detail = QLabel(reason)
            detail.setAlignment(Qt.AlignmentFlag.AlignCenter)
            detail.setWordWrap(True)
            detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            detail.setStyleSheet("color: palette(mid);")
            layout.addWidget(detail)
        layout.addStretch(2)


def sample_is_ready() -> bool:
    """True once the sample dataset was fully generated (the generator's marker or images)."""
    folder = paths.sample_images_dir()
    if not folder.is_dir():
        return False
    try:
        from sslstudio.data import sample

        ready = getattr(sample, "sample_is_complete", None) or getattr(sample, "is_complete", None)
        if callable(ready):
            return bool(ready(folder))
    except ImportError:
        pass
    return any(folder.rglob("*.png")) or any(folder.rglob("*.jpg"))


def generate_sample(progress=None, cancelled=None):
    """Write the sample dataset into paths.sample_images_dir() (runs in a worker)."""
    import inspect

    from sslstudio.data.sample import generate_sample_dataset

    params = inspect.signature(generate_sample_dataset).parameters
    kwargs = {}
    per_class = os.environ.get(SAMPLE_PER_CLASS_ENV)
    if per_class:
        for name in ("per_class", "n_per_class", "images_per_class"):
            if name in params:
                kwargs[name] = int(per_class)
                break
    if "progress" in params and progress is not None:
        kwargs["progress"] = lambda done, total, *rest: progress(done, total, "Generating images")
    if "cancel" in params and cancelled is not None:
        kwargs["cancel"] = cancelled
    dest = paths.sample_images_dir()
    generate_sample_dataset(dest, **kwargs)
    return dest


class MainWindow(QMainWindow):
    project_opened = Signal()

    def __init__(self, ctx: AppContext | None = None) -> None:
        super().__init__()
        self.ctx = ctx or AppContext()
        self.ctx.window = self
        self.setWindowTitle("SSL Studio")
        self.setAcceptDrops(True)
        self.resize(1280, 800)
        self.setMinimumSize(QSize(960, 600))
        self._pages: dict[str, QWidget] = {}
        self.sample_worker = None

        self.stack = QStackedWidget()
        self.sidebar = QListWidget()
        self.sidebar.setObjectName("workflowSidebar")
        self.sidebar.setFixedWidth(190)
        self.sidebar.setSpacing(2)
        self.sidebar.setFrameShape(QListWidget.Shape.NoFrame)
        for number, title in enumerate(PAGE_TITLES, start=1):
            item = QListWidgetItem(f"{number}   {title}")
            item.setToolTip(f"{PAGE_HINTS[title]} (Alt+{number})")
            item.setData(Qt.ItemDataRole.UserRole, title)
            item.setSizeHint(QSize(170, 40))
            self.sidebar.addItem(item)
        self.sidebar.currentRowChanged.connect(self._on_sidebar_row)
        # palette() keeps the sidebar right in light and dark themes alike
        self.sidebar.setStyleSheet(
            "QListWidget#workflowSidebar { background: transparent; font-size: 11pt; }"
            "QListWidget#workflowSidebar::item { padding-left: 10px; border-radius: 6px; }"
            "QListWidget#workflowSidebar::item:hover { background: palette(midlight); }"
            "QListWidget#workflowSidebar::item:selected { background: palette(highlight);"
            " color: palette(highlighted-text); }")

        from sslstudio.gui.start_screen import StartScreen

        self.start_screen = StartScreen(self.ctx)
        self.start_screen.open_folder_requested.connect(self.choose_folder)
        self.start_screen.open_sample_requested.connect(self.open_sample)
        self.start_screen.open_project_requested.connect(self.open_path)
        self.stack.addWidget(self.start_screen)

        self.project_label = QLabel("No project open")
        self.project_label.setObjectName("projectLabel")
        self.project_label.setWordWrap(True)
        home = QPushButton("Projects…")
        home.setToolTip("Recent projects, the sample dataset, open a folder")
        home.clicked.connect(self.show_start_screen)

        side = QWidget()
        side.setObjectName("sidebarPanel")
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(8, 12, 8, 8)
        brand = QLabel("<b style='font-size:15pt'>SSL Studio</b>")
        side_layout.addWidget(brand)
        side_layout.addWidget(self.project_label)
        side_layout.addSpacing(8)
        side_layout.addWidget(self.sidebar, 1)
        side_layout.addWidget(home)

        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(side)
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(central)

        self.status_text = QLabel("")
        self.statusBar().addWidget(self.status_text, 1)
        self.ctx.status_message.connect(self.show_status)
        self.ctx.project_changed.connect(self._on_project_changed)
        self.ctx.page_requested.connect(self.show_page)
        self._build_menus()
        geometry = self.ctx.settings.window_geometry()
        if geometry is not None:
            self.restoreGeometry(geometry)
        self._on_project_changed()
        self.show_start_screen()

    # ------------------------------------------------------------------ menus
    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self._add_action(file_menu, "Open &Folder…", self.choose_folder, QKeySequence.StandardKey.Open)
        self._add_action(file_menu, "Open &Project…", self.choose_project, "Ctrl+Shift+O")
        self._add_action(file_menu, "Open the &Sample Dataset", self.open_sample)
        self.recent_menu = file_menu.addMenu("&Recent Projects")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addSeparator()
        self._add_action(file_menu, "&Close Project", self.close_project, "Ctrl+W")
        self._add_action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        go_menu = self.menuBar().addMenu("&Go")
        self._add_action(go_menu, "&Projects", self.show_start_screen, "Alt+0")
        for number, title in enumerate(PAGE_TITLES, start=1):
            self._add_action(go_menu, title, lambda t=title: self.show_page(t), f"Alt+{number}")
        help_menu = self.menuBar().addMenu("&Help")
        self.reset_settings_action = self._add_action(help_menu, "&Reset Settings…",
                                                      self.reset_settings)
        help_menu.addSeparator()
        self._add_action(help_menu, "&About SSL Studio", self._about)

    def _add_action(self, menu, text, slot, shortcut=None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(lambda *_: slot())
        menu.addAction(action)
        return action

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.ctx.settings.recent_projects()
        for project_dir in recent:
            self._add_action(self.recent_menu, str(project_dir),
                             lambda p=project_dir: self.open_path(p))
        if not recent:
            self.recent_menu.addAction("(none)").setEnabled(False)

    def reset_settings(self, confirm: bool = True) -> bool:
        """Forget recent projects and window state (projects on disk stay); True if done."""
        if confirm:
            answer = QMessageBox.question(
                self, "Reset settings",
                "Forget the recent projects list and the window layout?\n\n"
                "Projects, runs and models on disk are not touched.\n"
                f"Settings file: {self.ctx.settings.file}",
                QMessageBox.StandardButton.Reset | QMessageBox.StandardButton.Cancel,
                QMessageBox.StandardButton.Cancel)
            if answer != QMessageBox.StandardButton.Reset:
                return False
        self.ctx.settings.reset()
        self.resize(1280, 800)  # what closing will store is the default size again
        if self.stack.currentWidget() is self.start_screen:
            self.start_screen.refresh()
        self.ctx.status("Settings reset")
        return True

    def _about(self) -> None:
        from sslstudio import __version__

        QMessageBox.about(self, "About SSL Studio",
                          f"<b>SSL Studio {__version__}</b><p>Pretrain an image backbone "
                          "without labels, label a few images, build and export a classifier.</p>")

    # ------------------------------------------------------------------ pages
    def page(self, title: str) -> QWidget:
        """The page with this title, created on first use (placeholder if it cannot load)."""
        if title in self._pages:
            return self._pages[title]
        _, module_name, class_name = next(p for p in PAGES if p[0] == title)
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
            widget = cls(self.ctx, self)
        except Exception as exc:  # noqa: BLE001 - one broken page must not take the app down
            reason = f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, ImportError):
                traceback.print_exc()
            widget = PlaceholderPage(title, reason, self)
        self._pages[title] = widget
        self.stack.addWidget(widget)
        return widget

    def create_all_pages(self) -> list[QWidget]:
        return [self.page(title) for title in PAGE_TITLES]

    def show_page(self, title: str) -> QWidget:
        widget = self.page(title)
        self.stack.setCurrentWidget(widget)
        row = PAGE_TITLES.index(title)
        if self.sidebar.currentRow() != row:
            self.sidebar.blockSignals(True)
            self.sidebar.setCurrentRow(row)
            self.sidebar.blockSignals(False)
        on_shown = getattr(widget, "on_shown", None)
        if callable(on_shown):
            on_shown()
        return widget

    def current_page_title(self) -> str | None:
        widget = self.stack.currentWidget()
        return next((t for t, w in self._pages.items() if w is widget), None)

    def show_start_screen(self) -> None:
        self.start_screen.refresh()
        self.stack.setCurrentWidget(self.start_screen)
        self.sidebar.blockSignals(True)
        self.sidebar.clearSelection()
        self.sidebar.setCurrentRow(-1)
        self.sidebar.blockSignals(False)

    def _on_sidebar_row(self, row: int) -> None:
        if 0 <= row < len(PAGE_TITLES):
            self.show_page(PAGE_TITLES[row])

    # ------------------------------------------------------------------ projects
    def _on_project_changed(self) -> None:
        store = self.ctx.store
        if store is None:
            self.project_label.setText("No project open")
            self.setWindowTitle("SSL Studio")
        else:
            self.project_label.setText(f"{store.name}\n{store.image_root}")
            self.project_label.setToolTip(str(store.project_dir))
            self.setWindowTitle(f"{store.name} — SSL Studio")

    def open_path(self, path: str | Path) -> bool:
        """Open a project folder, or an image folder (its project is created if needed)."""
        try:
            self.ctx.open_folder(Path(path))
        except Exception as exc:  # noqa: BLE001 - bad folders become dialogs, not tracebacks
            self.ctx.show_error(f"Cannot open {Path(path).name or path}", exc)
            return False
        self.show_page("Data")
        self.project_opened.emit()
        return True

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open an image folder")
        if folder:
            self.open_path(folder)

    def choose_project(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a project folder",
                                                  str(paths.default_projects_dir()))
        if folder:
            self.open_path(folder)

    def close_project(self) -> None:
        self.ctx.close_project()
        self.show_start_screen()

    def open_sample(self) -> None:
        """Open the sample project, generating its images first (in a worker) on first use."""
        if sample_is_ready():
            self._open_sample_project()
            return
        if self.sample_worker is not None:
            return
        dialog = QProgressDialog("Generating the sample dataset…", "Cancel", 0, 0, self)
        dialog.setWindowTitle("Sample dataset")
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(0)
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        self.sample_dialog = dialog

        def progress(done, total, text):
            dialog.setMaximum(max(total, 1))
            dialog.setValue(min(done, max(total, 1)))
            dialog.setLabelText(f"{text or 'Generating the sample dataset'}: {done} of {total}")

        def finish(*_):
            self.sample_worker = None
            dialog.close()

        def done(_):
            finish()
            self._open_sample_project()

        def failed(exc):
            finish()
            self.ctx.show_error("The sample dataset could not be generated", exc)

        def cancelled():
            finish()
            self.ctx.status("Sample dataset cancelled")

        self.sample_worker = self.ctx.run_in_background(
            generate_sample, on_result=done, on_error=failed, on_progress=progress,
            on_cancelled=cancelled)
        dialog.canceled.connect(self.sample_worker.cancel)
        dialog.show()

    def _open_sample_project(self) -> None:
        from sslstudio.project import ProjectStore

        project_dir = paths.sample_project_dir()
        try:
            if (project_dir / "project.sqlite").is_file():
                store = ProjectStore.open(project_dir)
            else:
                store = ProjectStore.create(project_dir, paths.sample_images_dir(), name="sample")
        except Exception as exc:  # noqa: BLE001
            self.ctx.show_error("Cannot open the sample project", exc)
            return
        self.ctx.set_store(store)
        self.show_page("Data")
        self.project_opened.emit()

    # ------------------------------------------------------------------ status, drops, close
    def show_status(self, message: str) -> None:
        self.status_text.setText(message)

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt API
        if any(Path(u.toLocalFile()).is_dir() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        folders = [Path(u.toLocalFile()) for u in event.mimeData().urls()
                   if Path(u.toLocalFile()).is_dir()]
        if folders:
            event.acceptProposedAction()
            QTimer.singleShot(0, lambda: self.open_path(folders[0]))

    def closeEvent(self, event) -> None:  # noqa: N802
        self.ctx.settings.set_window_geometry(self.saveGeometry())
        self.hide()  # a run may take seconds to save its checkpoint: no frozen window meanwhile
        for widget in self._pages.values():
            shutdown = getattr(widget, "shutdown", None)
            if callable(shutdown):
                try:
                    shutdown()
                except Exception:  # noqa: BLE001 - closing must always work
                    traceback.print_exc()
        self.ctx.shutdown()
        super().closeEvent(event)
