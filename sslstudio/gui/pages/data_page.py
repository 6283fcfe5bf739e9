"""Data page: open an image folder, scan it in the background, show the summary,
the unreadable files with their reasons, and the thumbnail gallery."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from sslstudio.data.formats import human_bytes
from sslstudio.gui.widgets.gallery import GalleryModel, GalleryView, loader_for


@dataclass
class IndexSnapshot:
    """What the page shows, read from the store (in a worker after a scan)."""
    relpaths: list[str]
    sizes: np.ndarray
    mtimes: np.ndarray
    bad: list = field(default_factory=list)        # BadFile(relpath, reason)
    keys: dict = field(default_factory=dict)       # relpath → (size, mtime): thumbnail keys
    labelled: int = 0
    summary: object = None                         # SyncSummary after a scan
    scan_seconds: float | None = None

    @property
    def total_bytes(self) -> int:
        return int(self.sizes.sum()) if len(self.sizes) else 0


def read_snapshot(store) -> IndexSnapshot:
    """Everything the page shows, read from the store; runs in a worker for big projects."""
    entries = store.image_entries()
    return IndexSnapshot(relpaths=[e.relpath for e in entries],
                         sizes=np.fromiter((e.size for e in entries), np.int64, len(entries)),
                         mtimes=np.fromiter((e.mtime_ns for e in entries), np.int64,
                                            len(entries)),
                         bad=store.bad_files(),
                         keys={e.relpath: (e.size, e.mtime_ns) for e in entries},
                         labelled=len(store.labels(present_only=True)))


def scan_and_sync(store, progress=None, cancelled=None) -> IndexSnapshot:
    """Scan the project's image folder, bring the index up to date, read it back (worker)."""
    from sslstudio.data.scan import scan_folder

    def report(done, total=0, *rest):
        if progress is not None:
            progress(done, total, "Scanning")

    scan = scan_folder(store.image_root, check_headers=True, progress=report,
                       cancel=cancelled)
    summary = store.sync_index(scan)
    snapshot = read_snapshot(store)
    snapshot.summary, snapshot.scan_seconds = summary, getattr(scan, "seconds", None)
    return snapshot


class DataPage(QWidget):
    title = "Data"
    index_ready = Signal(int)          # number of images now in the gallery

    def __init__(self, ctx, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.scan_worker = None
        self.load_worker = None
        self.snapshot: IndexSnapshot | None = None
        self.setAcceptDrops(True)
        self._build()
        ctx.project_changed.connect(self.on_project_changed)
        ctx.labels_changed.connect(self._refresh_labels)
        self.on_project_changed()

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        self.open_button = QPushButton("Open folder…")
        self.open_button.clicked.connect(self.choose_folder)
        self.rescan_button = QPushButton("Rescan")
        self.rescan_button.setToolTip("Look for new, changed and removed files")
        self.rescan_button.clicked.connect(self.start_scan)
        self.folder_label = QLabel("")
        self.folder_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(260)
        self.progress.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_scan)
        self.next_button = QPushButton("Next: Pretrain →")
        self.next_button.clicked.connect(lambda: self.ctx.go_to("Pretrain"))
        top = QHBoxLayout()
        top.addWidget(self.open_button)
        top.addWidget(self.rescan_button)
        top.addWidget(self.folder_label, 1)
        top.addWidget(self.progress)
        top.addWidget(self.cancel_button)
        top.addWidget(self.next_button)

        self.summary_label = QLabel("")
        self.summary_label.setObjectName("dataSummary")
        self.summary_label.setWordWrap(True)

        self.model = GalleryModel(self)
        self.gallery = GalleryView()
        self.gallery.setModel(self.model)

        self.bad_table = QTableWidget(0, 2)
        self.bad_table.setHorizontalHeaderLabels(["Unreadable file", "Reason"])
        self.bad_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.bad_table.horizontalHeader().setStretchLastSection(True)
        self.bad_table.setColumnWidth(0, 320)
        self.bad_table.verticalHeader().setVisible(False)
        self.bad_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.bad_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.bad_box = QWidget()
        bad_layout = QVBoxLayout(self.bad_box)
        bad_layout.setContentsMargins(0, 4, 0, 0)
        self.bad_title = QLabel("")
        bad_layout.addWidget(self.bad_title)
        bad_layout.addWidget(self.bad_table)

        content = QWidget()
        content_layout = QVBoxLayout(content)
        content_layout.setContentsMargins(0, 0, 0, 0)
        content_layout.addWidget(self.summary_label)
        content_layout.addWidget(self.gallery, 1)
        content_layout.addWidget(self.bad_box)    # only as tall as its rows (max 8)

        self.empty = QLabel("<h2>Open an image folder</h2><p>Click <b>Open folder…</b> or drop "
                            "a folder here. Sub-folders are included; the folder is only "
                            "read, never changed.</p>")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)
        self.empty.setObjectName("dropZone")
        self.body = QStackedWidget()
        self.body.addWidget(self.empty)
        self.body.addWidget(content)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.body, 1)
        self._set_scanning(False)

    # ------------------------------------------------------------------ project
    def on_project_changed(self, *args) -> None:
        self.cancel_scan()
        if self.load_worker is not None:
            self.load_worker.cancel()
            self.load_worker = None
        self.snapshot = None
        self.model.set_relpaths([])
        store = self.ctx.store
        self.model.set_loader(loader_for(self.ctx))
        if store is None:
            self.snapshot = None
            self.model.set_relpaths([])
            self.folder_label.setText("")
            self.summary_label.setText("")
            self.body.setCurrentWidget(self.empty)
            self.rescan_button.setEnabled(False)
            self.next_button.setEnabled(False)
            self._show_bad([])
            return
        self.folder_label.setText(str(store.image_root))
        self.rescan_button.setEnabled(True)
        self.next_button.setEnabled(True)
        self.body.setCurrentIndex(1)
        self.summary_label.setText("Reading the index…")
        # What the project already knows shows first (read in a worker), then a rescan
        # brings it up to date.
        self.load_worker = self.ctx.run_in_background(
            read_snapshot, store, on_result=lambda snap: self._snapshot_loaded(store, snap),
            error_title="Reading the project's index failed")

    def _snapshot_loaded(self, store, snapshot: IndexSnapshot) -> None:
        if self.ctx.store is not store:
            return      # another project was opened meanwhile
        self.load_worker = None
        self.show_snapshot(snapshot)
        self.start_scan()

    def show_snapshot(self, snapshot: IndexSnapshot) -> None:
        store = self.ctx.store
        if store is None:
            return
        previous = self.snapshot
        self.snapshot = snapshot
        if self.model.loader is not None:
            self.model.loader.set_key_map(snapshot.keys)
        if previous is None or previous.relpaths != snapshot.relpaths:
            self.model.set_relpaths(snapshot.relpaths)
        self._refresh_labels()
        self._show_bad(snapshot.bad)
        self._show_summary(snapshot)
        self.index_ready.emit(len(snapshot.relpaths))

    def _show_summary(self, snapshot: IndexSnapshot) -> None:
        n = len(snapshot.relpaths)
        parts = [f"<b>{n:,} images</b>", human_bytes(snapshot.total_bytes)]
        parts.append(f"<span style='color:#d9534f'>{len(snapshot.bad):,} unreadable</span>"
                     if snapshot.bad else "no unreadable files")
        parts.append(f"{snapshot.labelled:,} labelled")
        if snapshot.summary is not None:
            s = snapshot.summary
            changes = [f"{s.added:,} new" if s.added else "",
                       f"{s.updated:,} changed" if s.updated else "",
                       f"{s.removed:,} gone" if s.removed else "",
                       f"{s.missing:,} labelled images missing" if s.missing else ""]
            changes = [c for c in changes if c]
            if changes:
                parts.append("since last scan: " + ", ".join(changes))
            if snapshot.scan_seconds is not None:
                parts.append(f"scanned in {snapshot.scan_seconds:.1f} s")
        self.summary_label.setText(" · ".join(parts))

    def _show_bad(self, bad: list) -> None:
        self.bad_table.setRowCount(len(bad))
        for row, item in enumerate(bad):
            name = QTableWidgetItem(item.relpath)
            name.setToolTip(item.relpath)
            reason = QTableWidgetItem(item.reason)
            reason.setToolTip(item.reason)
            self.bad_table.setItem(row, 0, name)
            self.bad_table.setItem(row, 1, reason)
        self.bad_title.setText(f"<b>{len(bad)} unreadable file{'s' if len(bad) != 1 else ''}"
                               "</b> (skipped everywhere; the reason says why)")
        self.bad_box.setVisible(bool(bad))
        # as tall as its rows (up to 8), so a few bad files do not take half the page
        rows_height = self.bad_table.verticalHeader().defaultSectionSize() * min(max(len(bad), 1), 8)
        self.bad_table.setMaximumHeight(rows_height + self.bad_table.horizontalHeader().height() + 6)

    def _refresh_labels(self, *args) -> None:
        store = self.ctx.store
        if store is None:
            return
        colors = {c.name: c.color for c in store.classes()}
        labels = store.labels(present_only=True)
        self.model.set_labels(labels, colors)
        if self.snapshot is not None and self.snapshot.labelled != len(labels):
            self.snapshot.labelled = len(labels)
            self._show_summary(self.snapshot)

    # ------------------------------------------------------------------ scanning
    def start_scan(self) -> bool:
        store = self.ctx.store
        if store is None or self.scan_worker is not None:
            return False
        self._set_scanning(True)
        self.progress.setRange(0, 0)
        self.progress.setFormat("Scanning…")
        self.ctx.status(f"Scanning {store.image_root}…")
        self.scan_worker = self.ctx.run_in_background(
            scan_and_sync, store, on_result=lambda snap: self._scan_done(store, snap),
            on_error=self._scan_failed,
            on_progress=self._scan_progress, on_cancelled=self._scan_cancelled)
        return True

    def cancel_scan(self) -> None:
        if self.scan_worker is not None:
            self.scan_worker.cancel()
            self.scan_worker = None
            self._set_scanning(False)

    def _scan_progress(self, done: int, total: int, text: str) -> None:
        if total > 0:
            self.progress.setRange(0, total)
            self.progress.setValue(min(done, total))
            self.progress.setFormat(f"{text} %v / %m")
        else:
            self.progress.setFormat(f"{text}: {done:,} files")

    def _scan_done(self, store, snapshot: IndexSnapshot) -> None:
        if self.ctx.store is not store:
            return      # a scan of a project that is no longer open
        self.scan_worker = None
        self._set_scanning(False)
        self.show_snapshot(snapshot)
        self.ctx.status(f"Scan finished: {snapshot.summary}" if snapshot.summary else
                        "Scan finished")
        self.ctx.index_changed.emit()

    def _scan_failed(self, exc: BaseException) -> None:
        self.scan_worker = None
        self._set_scanning(False)
        store = self.ctx.store
        where = store.image_root if store is not None else "the folder"
        self.ctx.show_error(f"Scanning {where} failed", exc)

    def _scan_cancelled(self) -> None:
        self.scan_worker = None
        self._set_scanning(False)
        self.ctx.status("Scan cancelled; the gallery shows the previous index")

    def _set_scanning(self, scanning: bool) -> None:
        self.progress.setVisible(scanning)
        self.cancel_button.setVisible(scanning)
        self.rescan_button.setEnabled(not scanning and self.ctx.store is not None)

    # ------------------------------------------------------------------ opening folders
    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open an image folder")
        if folder:
            self.open_folder(Path(folder))

    def open_folder(self, folder: Path) -> bool:
        window = self.ctx.window
        if window is not None and hasattr(window, "open_path"):
            return window.open_path(folder)
        try:
            self.ctx.open_folder(folder)
        except Exception as exc:  # noqa: BLE001
            self.ctx.show_error(f"Cannot open {folder}", exc)
            return False
        return True

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if any(Path(u.toLocalFile()).is_dir() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        for url in event.mimeData().urls():
            if Path(url.toLocalFile()).is_dir():
                event.acceptProposedAction()
                self.open_folder(Path(url.toLocalFile()))
                return

    def on_shown(self) -> None:
        self.gallery.request_visible()
