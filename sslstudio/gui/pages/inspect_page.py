"""Inspect page: the pretext task's previews (live, then browsable) and the embedding map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from sslstudio.gui.pages.pretrain_page import run_hub
from sslstudio.gui.run_bridge import read_events
from sslstudio.gui.widgets.embedding_map import EmbeddingMap
from sslstudio.gui.widgets.preview_grid import PreviewGrid
from sslstudio.project.images import load_project_images

BACKBONE_FILE = "backbone.safetensors"


def backbone_runs(store) -> list[dict]:
    """Pretraining runs of the project that left a backbone, newest first."""
    runs = [r for r in store.runs() if (Path(r["path"]) / BACKBONE_FILE).exists()]
    return list(reversed(runs))


EMBEDDING_CACHE = "embedding-features.npz"
# what a cached feature row is: the mean over an image and its mirror image. A cache of
# another kind (older versions kept the image alone) is computed again.
FEATURE_VIEWS = "image+mirror"


def _backbone_stamp(run_dir: Path) -> int:
    try:
        return (run_dir / "backbone.safetensors").stat().st_mtime_ns
    except OSError:
        return -1


def save_embedding_cache(run_dir: str | Path, store, relpaths: list[str],
                         features: np.ndarray) -> None:
    """Keep the features next to the backbone, so a reopened project shows its map at once.

    float16 halves the file (100,000 images × 256 features ≈ 50 MB); the map and the
    nearest-neighbour search do not need more precision.
    """
    import os

    run_dir = Path(run_dir)
    tmp = run_dir / (EMBEDDING_CACHE + ".tmp")
    with open(tmp, "wb") as handle:
        np.savez(handle, relpaths=np.asarray(relpaths, dtype=str),
                 features=features.astype(np.float16),
                 backbone_stamp=np.int64(_backbone_stamp(run_dir)),
                 views=np.asarray(FEATURE_VIEWS),
                 source_count=np.int64(len(store.image_relpaths())))
    os.replace(tmp, run_dir / EMBEDDING_CACHE)


def load_embedding_cache(run_dir: str | Path, store):
    """(relpaths, features) saved by an earlier map of this backbone, or None when there is
    none or it no longer fits (the backbone changed, or images came or went)."""
    run_dir = Path(run_dir)
    try:
        with np.load(run_dir / EMBEDDING_CACHE, allow_pickle=False) as data:
            relpaths = [str(r) for r in data["relpaths"]]
            features = data["features"].astype(np.float32)
            stamp, count = int(data["backbone_stamp"]), int(data["source_count"])
            views = str(data["views"])
    except (OSError, KeyError, ValueError):
        return None
    if views != FEATURE_VIEWS:
        return None
    current = store.image_relpaths()
    if stamp != _backbone_stamp(run_dir) or count != len(current) or \
            not set(relpaths) <= set(current) or len(relpaths) != len(features):
        return None
    return relpaths, features


def compute_embeddings(run_dir: str | Path, store, progress=None, batch_size: int = 128):
    """Pooled backbone features of every image, averaged with its mirror image: (relpaths, N×D
    float32). Runs in a worker.

    Mirror-averaged like the classifier's features by default: the Label page's suggestions
    from them measured better (docs/benchmarks-classifier.md, "Suggestions from mirror-averaged
    features"), at twice the forward passes."""
    from sslstudio.models.io import load_backbone
    from sslstudio.train.downstream.features import extract_features
    from sslstudio.train.downstream.inputs import as_image_set

    backbone, config = load_backbone(str(Path(run_dir) / "backbone"))
    size = int(config.get("image_size") or getattr(backbone, "image_size", 0) or 64)
    relpaths, images = load_project_images(store, size, progress)
    features = extract_features(backbone, as_image_set(images, relpaths), batch_size=batch_size,
                                augment_average=True, progress=progress)
    try:
        save_embedding_cache(run_dir, store, relpaths, features)
    except OSError:  # a read-only run folder: the map still works, it is just not kept
        pass
    return relpaths, features


class InspectPage(QWidget):
    title = "Inspect"

    embedding_ready = Signal(int)   # number of points on the map

    def __init__(self, ctx, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.hub = run_hub(ctx)
        self._thumbs: dict[str, QPixmap] = {}
        self._images_by_relpath: dict[str, int] = {}
        self._images = None
        self.worker = None
        self.selection: list[str] = []
        self._build()
        self.hub.run_started.connect(self._on_run_started)
        self.hub.event.connect(self._on_event)
        if hasattr(ctx, "project_changed"):
            ctx.project_changed.connect(self.on_project_changed)
        if hasattr(ctx, "labels_changed"):
            ctx.labels_changed.connect(self._recolor)
        for name in ("predictions_changed",):
            signal = getattr(ctx, name, None)
            if signal is not None and hasattr(signal, "connect"):
                signal.connect(self._recolor)
        self.on_project_changed()

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        previews_box = QGroupBox("Pretext previews")
        self.previews = PreviewGrid(columns=1)
        self.preview_source = QLabel("")
        self.preview_source.setWordWrap(True)
        box = QVBoxLayout(previews_box)
        box.addWidget(self.preview_source)
        box.addWidget(self.previews, 1)

        map_box = QGroupBox("Embedding map")
        self.run_combo = QComboBox()
        self.run_combo.setToolTip("Which pretrained backbone draws the map")
        self.compute_button = QPushButton("Compute map")
        self.compute_button.clicked.connect(self.compute_map)
        self.color_by = QComboBox()
        self.color_by.addItems(["label", "prediction"])
        self.color_by.currentTextChanged.connect(lambda _t: self._recolor())
        controls = QHBoxLayout()
        controls.addWidget(QLabel("Backbone"))
        controls.addWidget(self.run_combo, 1)
        controls.addWidget(self.compute_button)
        controls.addWidget(QLabel("Colour by"))
        controls.addWidget(self.color_by)
        self.map_status = QLabel("Compute the map once a run has finished.")
        self.map = EmbeddingMap(thumbnail=self.thumbnail)
        self.map.neighbours_found.connect(self._show_neighbours)
        self.map.selection_changed.connect(self._selection_changed)

        self.neighbours = QListWidget()
        self.neighbours.setViewMode(QListWidget.IconMode)
        self.neighbours.setIconSize(QSize(64, 64))
        self.neighbours.setFlow(QListWidget.LeftToRight)
        self.neighbours.setWrapping(False)
        self.neighbours.setFixedHeight(104)
        self.neighbours.itemClicked.connect(
            lambda item: self.map.show_neighbours(item.data(Qt.UserRole)))
        self.neighbours_label = QLabel("Click a point to see its nearest neighbours.")

        self.selection_label = QLabel("Box- or lasso-select a cluster to label it in one step.")
        self.label_combo = QComboBox()
        self.label_combo.setEditable(True)
        self.label_combo.setMinimumWidth(140)
        self.label_combo.lineEdit().setPlaceholderText("class name")
        self.label_button = QPushButton("Label selected as…")
        self.label_button.setEnabled(False)
        self.label_button.clicked.connect(self.label_selection)
        selection_row = QHBoxLayout()
        selection_row.addWidget(self.selection_label, 1)
        selection_row.addWidget(self.label_combo)
        selection_row.addWidget(self.label_button)

        map_layout = QVBoxLayout(map_box)
        map_layout.addLayout(controls)
        map_layout.addWidget(self.map_status)
        map_layout.addWidget(self.map, 1)
        map_layout.addLayout(selection_row)
        map_layout.addWidget(self.neighbours_label)
        map_layout.addWidget(self.neighbours)

        split = QSplitter(Qt.Horizontal)
        split.addWidget(previews_box)
        split.addWidget(map_box)
        split.setSizes([480, 800])
        layout = QHBoxLayout(self)
        layout.addWidget(split)

    @property
    def store(self):
        return getattr(self.ctx, "store", None)

    # ------------------------------------------------------------------ project and runs
    def on_project_changed(self, *args) -> None:
        self._thumbs.clear()
        self._images = None
        self.map.set_data([], np.zeros((0, 2)))
        self.refresh_runs()
        self._refresh_classes()
        store = self.store
        if store is None:
            self.previews.clear()
            return
        runs = [r for r in store.runs("pretrain")]
        if runs:  # reopen a project: show the last run's previews
            self._load_run_previews(runs[-1]["path"])
        self.show_cached_map()

    def show_cached_map(self) -> bool:
        """Show the map saved for the chosen backbone, if it still fits (read in a worker)."""
        run_dir, store = self.run_combo.currentData(), self.store
        if not run_dir or store is None or self.worker is not None or \
                not (Path(run_dir) / EMBEDDING_CACHE).is_file():
            return False

        def done(result) -> None:
            self.worker = None
            self.compute_button.setEnabled(True)
            if result is None:
                self.map_status.setText("The saved map no longer fits the images: "
                                        "Compute map draws a new one.")
            else:
                self._on_embeddings(result, run_dir)

        self.worker = self.ctx.run_in_background(load_embedding_cache, run_dir, store,
                                                 on_result=done,
                                                 on_error=self._on_embedding_error)
        return True

    def refresh_runs(self) -> None:
        self.run_combo.clear()
        store = self.store
        if store is None:
            self.compute_button.setEnabled(False)
            return
        for run in backbone_runs(store):
            config = run.get("config") or {}
            text = f"{Path(run['path']).name} · {config.get('task', '?')} · " \
                   f"{config.get('backbone', '?')}"
            self.run_combo.addItem(text, run["path"])
        self.compute_button.setEnabled(self.run_combo.count() > 0 and self.worker is None)
        if not self.run_combo.count():
            self.map_status.setText("No pretrained backbone yet: run pretraining first.")

    def _load_run_previews(self, run_dir: str) -> None:
        self.previews.clear()
        self.preview_source.setText(f"Run {Path(run_dir).name}")
        for event in read_events(run_dir):
            self.previews.add_event(event)

    def _on_run_started(self, run_dir: str, config: dict) -> None:
        self.previews.clear()
        self.preview_source.setText(f"Run {Path(run_dir).name} "
                                    f"({config.get('task', '')}): previews appear live.")

    def _on_event(self, event: dict) -> None:
        kind = event.get("kind")
        if kind == "preview":
            self.previews.add_event(event)
        elif kind == "end":
            self.refresh_runs()

    # ------------------------------------------------------------------ embedding
    def compute_map(self) -> bool:
        run_dir = self.run_combo.currentData()
        store = self.store
        if not run_dir or store is None or self.worker is not None:
            return False
        self.compute_button.setEnabled(False)
        self.map_status.setText(f"Computing features with {Path(run_dir).name}…")
        self.worker = self.ctx.run_in_background(
            compute_embeddings, run_dir, store,
            on_result=lambda result: self._on_embeddings(result, run_dir),
            on_error=self._on_embedding_error)
        return True

    def _on_embeddings(self, result, run_dir: str | None = None) -> None:
        self.worker = None
        self.compute_button.setEnabled(True)
        relpaths, features = result
        self.map.set_data(relpaths, features)
        self._recolor()
        self.map_status.setText(f"{len(relpaths)} images, {features.shape[1]} features "
                                f"(PCA of pooled backbone features).")
        try:
            self.ctx.set_embeddings({r: features[i] for i, r in enumerate(relpaths)}, run_dir)
        except AttributeError:
            pass
        self.embedding_ready.emit(len(relpaths))

    def _on_embedding_error(self, *error) -> None:
        from sslstudio.gui.workers import error_text

        self.worker = None
        self.compute_button.setEnabled(True)
        self.map_status.setText(f"Could not compute the map: {error_text(error)}")

    def _recolor(self, *args) -> None:
        store = self.store
        if store is None or not self.map.relpaths:
            return
        colors = {c.name: c.color for c in store.classes()} if hasattr(store, "classes") else {}
        if self.color_by.currentText() == "prediction":
            predictions = getattr(self.ctx, "predictions", None) or {}
            categories = {r: (p[0] if isinstance(p, (tuple, list)) else str(p))
                          for r, p in predictions.items()}
        else:
            categories = store.labels()
        self.map.set_categories(categories, colors)
        self._refresh_classes()

    def _refresh_classes(self) -> None:
        store = self.store
        current = self.label_combo.currentText()
        self.label_combo.clear()
        if store is not None:
            self.label_combo.addItems([c.name for c in store.classes()])
        if current:
            self.label_combo.setCurrentText(current)

    def thumbnail(self, relpath: str) -> QPixmap | None:
        pixmap = self._thumbs.get(relpath)
        if pixmap is None and self.store is not None:
            pixmap = QPixmap(str(Path(self.store.image_root) / relpath))
            if not pixmap.isNull():
                pixmap = pixmap.scaled(96, 96, Qt.KeepAspectRatio, Qt.SmoothTransformation)
            if len(self._thumbs) > 2000:
                self._thumbs.clear()
            self._thumbs[relpath] = pixmap
        return pixmap

    def _show_neighbours(self, relpath: str, found: list) -> None:
        self.neighbours.clear()
        for rel, similarity in [(relpath, 1.0)] + list(found):
            item = QListWidgetItem(f"{similarity:.2f}")
            pixmap = self.thumbnail(rel)
            if pixmap is not None and not pixmap.isNull():
                item.setIcon(QIcon(pixmap))
            item.setToolTip(rel)
            item.setData(Qt.UserRole, rel)
            self.neighbours.addItem(item)
        self.neighbours_label.setText(f"Nearest neighbours of {relpath} (cosine similarity):")

    def _selection_changed(self, relpaths: list) -> None:
        self.selection = list(relpaths)
        self.label_button.setEnabled(bool(relpaths))
        self.selection_label.setText(f"{len(relpaths)} images selected." if relpaths else
                                     "Nothing selected.")

    def label_selection(self, class_name: str | None = None) -> int:
        """Give every selected image the class in the combo (created when new)."""
        name = (class_name if isinstance(class_name, str) else self.label_combo.currentText()).strip()
        store = self.store
        if not name or store is None or not self.selection:
            return 0
        store.set_labels({relpath: name for relpath in self.selection})
        labels_changed = getattr(self.ctx, "labels_changed", None)
        if labels_changed is not None and hasattr(labels_changed, "emit"):
            try:
                labels_changed.emit()
            except TypeError:
                labels_changed.emit(list(self.selection))
        else:
            self._recolor()
        self.selection_label.setText(f"{len(self.selection)} images labelled '{name}'.")
        return len(self.selection)


__all__ = ["InspectPage", "compute_embeddings"]
