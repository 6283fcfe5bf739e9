"""AppContext: what every page shares (the open project, background work, status).

Contract for page authors (keep to it; main_window builds one context and hands
it to every page as ``XPage(ctx, parent)``):

Attributes
    ``ctx.store``        the open ``ProjectStore`` or None (read-only property)
    ``ctx.predictions``  dict relpath → (class name, confidence) or {} (settable;
                         setting it emits ``predictions_changed``)
    ``ctx.embeddings``   dict relpath → 1-D feature vector or {} (settable; emits
                         ``embeddings_changed``)
    ``ctx.embeddings_source``  run folder of the backbone behind ``ctx.embeddings`` or None
                         (set both with ``set_embeddings(mapping, run_dir)``)
    ``ctx.window``       the main window (parent for dialogs) or None
    ``ctx.settings``     ``AppSettings`` (recent projects, window state)

Signals (all without arguments, except ``status_message`` and ``page_requested``)
    ``project_changed``       a project was opened or closed
    ``index_changed``         the open project's image index was re-synced (a scan ended)
    ``labels_changed``        labels or classes changed (emit with ``notify_labels_changed``)
    ``predictions_changed``, ``embeddings_changed``
    ``status_message(str)``   shown in the status bar
    ``page_requested(str)``   ask the window to show the page with that title

Methods
    ``status(msg)``                         status bar text
    ``run_in_background(fn, *args, on_result=, on_error=, on_progress=,
                        on_cancelled=, cancellable=True) -> Worker``   see workers.py
    ``open_project(dir)`` / ``open_folder(folder)`` / ``set_store(store)`` / ``close_project()``
    ``show_error(title, exc)``              readable dialog, traceback under details
    ``go_to(title)``                        same as emitting page_requested
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

from sslstudio import paths
from sslstudio.gui import workers
from sslstudio.gui.settings import AppSettings

DB_NAME = "project.sqlite"


def project_dir_for_folder(folder: Path) -> Path:
    """The default project of an image folder: default_projects_dir()/<folder name>.

    When a project of that name already belongs to another folder, a numbered
    name is used (photos, photos-2, ...), so two folders never share a project.
    """
    from sslstudio.project import ProjectStore

    folder = Path(folder).expanduser().resolve()
    base = re.sub(r"[^\w.-]+", "_", folder.name).strip("._") or "project"
    root = paths.default_projects_dir()
    for n in range(1, 1000):
        candidate = root / (base if n == 1 else f"{base}-{n}")
        if not (candidate / DB_NAME).is_file():
            return candidate
        try:
            store = ProjectStore.open(candidate)
        except Exception:  # noqa: BLE001 - a broken project is simply not ours
            continue
        try:
            if Path(store.image_root).resolve() == folder:
                return candidate
        finally:
            store.close()
    raise RuntimeError(f"too many projects named {base!r} in {root}")


class AppContext(QObject):
    project_changed = Signal()
    index_changed = Signal()
    labels_changed = Signal()
    predictions_changed = Signal()
    embeddings_changed = Signal()
    status_message = Signal(str)
    page_requested = Signal(str)

    def __init__(self, parent: QObject | None = None, settings: AppSettings | None = None) -> None:
        super().__init__(parent)
        self._store = None
        self._predictions: dict[str, tuple[str, float]] = {}
        self._embeddings: dict[str, Any] = {}
        self.embeddings_source: str | None = None
        self.window: QWidget | None = None
        self.settings = settings or AppSettings()
        self._workers: set[workers.Worker] = set()
        self._retired_stores: list = []
        self.thumbnail_loader = None     # set by widgets.gallery.loader_for

    # ------------------------------------------------------------------ project
    @property
    def store(self):
        return self._store

    def set_store(self, store) -> None:
        """Make `store` the open project (None closes it); pages hear project_changed."""
        old = self._store
        self._store = store
        self._predictions, self._embeddings = {}, {}
        self.embeddings_source = None
        if old is not None and old is not store:
            self._retire(old)
        if store is not None:
            self.settings.add_recent_project(store.project_dir)
            self.status(f"Opened project {store.name} ({store.image_root})")
        self.project_changed.emit()

    def open_project(self, project_dir: str | Path):
        from sslstudio.project import ProjectStore

        store = ProjectStore.open(project_dir)
        self.set_store(store)
        return store

    def open_folder(self, folder: str | Path):
        """Open an image folder: its existing project, or a new one under the projects dir.

        A folder that is itself a project (has project.sqlite) is opened as such.
        """
        from sslstudio.project import ProjectStore

        folder = Path(folder).expanduser()
        if (folder / DB_NAME).is_file():
            return self.open_project(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"not a folder: {folder}")
        project_dir = project_dir_for_folder(folder)
        if (project_dir / DB_NAME).is_file():
            store = ProjectStore.open(project_dir)
        else:
            store = ProjectStore.create(project_dir, folder, name=folder.name or None)
        self.set_store(store)
        return store

    def close_project(self) -> None:
        self.set_store(None)

    def _retire(self, store) -> None:
        # Workers may still read the old store; close it once none is running.
        if self._workers:
            self._retired_stores.append(store)
        else:
            store.close()

    def shutdown(self, wait_ms: int = 3000) -> None:
        """Cancel background work and close the project (called when the window closes)."""
        for worker in list(self._workers):
            worker.cancel()
        for worker in list(self._workers):
            worker.wait(wait_ms)
        if self.thumbnail_loader is not None:
            self.thumbnail_loader.shutdown()
            self.thumbnail_loader = None
        for store in self._retired_stores:
            store.close()
        self._retired_stores.clear()
        if self._store is not None:
            self._store.close()
            self._store = None

    # ------------------------------------------------------------------ shared results
    @property
    def predictions(self) -> dict[str, tuple[str, float]]:
        return self._predictions

    @predictions.setter
    def predictions(self, value: dict[str, tuple[str, float]] | None) -> None:
        self._predictions = dict(value or {})
        self.predictions_changed.emit()

    @property
    def embeddings(self) -> dict[str, Any]:
        return self._embeddings

    @embeddings.setter
    def embeddings(self, value: dict[str, Any] | None) -> None:
        self.set_embeddings(value, None)

    def set_embeddings(self, value: dict[str, Any] | None, source: str | Path | None) -> None:
        """Share features with the pages, with the run folder of the backbone that made them
        (so a page can tell when a newer backbone has made them stale)."""
        self._embeddings = dict(value or {})
        self.embeddings_source = str(source) if source is not None and value else None
        self.embeddings_changed.emit()

    def notify_labels_changed(self) -> None:
        self.labels_changed.emit()

    # ------------------------------------------------------------------ UI helpers
    def status(self, message: str) -> None:
        self.status_message.emit(str(message))

    def go_to(self, title: str) -> None:
        self.page_requested.emit(title)

    def show_error(self, title: str, exc: BaseException | str, details: str | None = None):
        return workers.show_error(self.window, title, exc, details)

    # ------------------------------------------------------------------ background work
    def run_in_background(self, fn: Callable, *args: Any, on_result: Callable | None = None,
                          on_error: Callable | None = None,
                          on_progress: Callable | None = None,
                          on_cancelled: Callable | None = None, cancellable: bool = True,
                          error_title: str | None = None, **kwargs: Any) -> workers.Worker:
        """Run fn(*args, **kwargs) in a thread; see sslstudio.gui.workers for the contract."""
        worker = workers.start_worker(
            fn, *args, on_result=on_result, on_error=on_error, on_progress=on_progress,
            on_cancelled=on_cancelled, cancellable=cancellable, error_parent=self.window,
            error_title=error_title, **kwargs)
        self._workers.add(worker)
        worker.finished_all.connect(lambda: self._worker_done(worker))
        return worker

    def _worker_done(self, worker: workers.Worker) -> None:
        self._workers.discard(worker)
        if not self._workers:
            for store in self._retired_stores:
                store.close()
            self._retired_stores.clear()

    @property
    def busy(self) -> bool:
        return bool(self._workers)
