"""Export page: write the classifier as TorchScript / ONNX / safetensors+JSON, verify, try it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QAbstractItemView,
    QHeaderView,
    QVBoxLayout,
    QWidget,
)

from sslstudio import plural

FORMATS = (("onnx", "ONNX (.onnx)", ".onnx"),
           ("torchscript", "TorchScript (.pt)", ".pt"),
           ("safetensors", "safetensors + JSON", ".safetensors"))
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.gif *.tif *.tiff *.webp)"


# ---------------------------------------------------------------------------- core calls
EXPORTS_SETTING = "exports"      # project setting: the files exported so far
MAX_REMEMBERED_EXPORTS = 50


def export_one(model_dir: str | Path, fmt: str, out_path: str | Path) -> dict:
    """Export through the core; returns {"path", "format", "max_abs_diff", "message"}."""
    try:
        from sslstudio.export import export_model
    except ImportError:
        from sslstudio.export.exporters import export_model

    result = export_model(model_dir, fmt, out_path)
    return _as_export_dict(result, fmt, out_path)


def _as_export_dict(result, fmt: str, out_path) -> dict:
    if isinstance(result, dict) and isinstance(result.get("export"), dict):
        export = result["export"]  # the core returns the model card with an "export" part
        verification = export.get("verification") or {}
        info = {"path": export.get("path", str(out_path)), "format": export.get("format", fmt),
                "max_abs_diff": verification.get("max_abs_diff"),
                "message": verification.get("check", ""), "classes": result.get("classes")}
    elif isinstance(result, dict):
        info = dict(result)
    elif result is None or isinstance(result, (str, Path)):
        info = {"path": str(result or out_path)}
    else:
        info = {k: getattr(result, k) for k in dir(result)
                if not k.startswith("_") and not callable(getattr(result, k))}
    info.setdefault("path", str(out_path))
    info["path"] = str(info["path"])
    info.setdefault("format", fmt)
    diff = info.get("max_abs_diff", info.get("max_diff", info.get("verification")))
    if isinstance(diff, dict):
        diff = diff.get("max_abs_diff")
    info["max_abs_diff"] = diff
    return info


def predict_file(model_path: str | Path, image_path: str | Path) -> tuple[str, float, dict]:
    """(class, confidence, {class: probability}) for one image, through the exported file.

    The image is decoded by the same load_square the app's cache and `sslstudio
    predict` use, so the answer is what the exported model gives anywhere.
    """
    from sslstudio.data.decode import load_square
    from sslstudio.export.predict import load_predictor

    predictor = load_predictor(model_path)
    image = load_square(image_path, predictor.image_size)
    probs = np.asarray(predictor.predict(image[None]))[0]
    best = int(np.argmax(probs))
    return (predictor.classes[best], float(probs[best]),
            {name: float(p) for name, p in zip(predictor.classes, probs)})


# ---------------------------------------------------------------------------- widgets
class DropArea(QFrame):
    """A box that accepts a dropped image file."""

    file_dropped = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.setFrameShape(QFrame.StyledPanel)
        self.setMinimumSize(220, 200)
        self.picture = QLabel("Drop an image here")
        self.picture.setAlignment(Qt.AlignCenter)
        layout = QVBoxLayout(self)
        layout.addWidget(self.picture)

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        for url in event.mimeData().urls():
            if url.isLocalFile():
                self.file_dropped.emit(url.toLocalFile())
                break

    def show_image(self, path: str) -> None:
        pixmap = QPixmap(path)
        if pixmap.isNull():
            self.picture.setText(Path(path).name)
        else:
            self.picture.setPixmap(pixmap.scaled(180, 180, Qt.KeepAspectRatio,
                                                 Qt.SmoothTransformation))


class ExportPage(QWidget):
    title = "Export"

    exported = Signal(list)       # the export result dicts
    predicted = Signal(str, float)

    def __init__(self, ctx, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.worker = None
        self.try_worker = None
        self.results: list[dict] = []
        self.last_prediction: tuple[str, float] | None = None
        self._build()
        if hasattr(ctx, "project_changed"):
            ctx.project_changed.connect(self.refresh_models)
            ctx.project_changed.connect(self.restore_exports)
        self.refresh_models()
        self.restore_exports()

    def _build(self) -> None:
        source = QGroupBox("Classifier")
        self.model_combo = QComboBox()
        self.model_combo.currentIndexChanged.connect(self._model_changed)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh_models)
        self.model_info = QLabel("")
        self.model_info.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.model_combo, 1)
        row.addWidget(self.refresh_button)
        source_layout = QVBoxLayout(source)
        source_layout.addLayout(row)
        source_layout.addWidget(self.model_info)

        target = QGroupBox("Formats and destination")
        self.format_checks: dict[str, QCheckBox] = {}
        formats_row = QHBoxLayout()
        for fmt, text, _suffix in FORMATS:
            check = QCheckBox(text)
            check.setChecked(fmt == "onnx")
            self.format_checks[fmt] = check
            formats_row.addWidget(check)
        formats_row.addStretch(1)
        self.destination = QLineEdit()
        self.destination.setPlaceholderText("folder for the exported files")
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._choose_destination)
        dest_row = QHBoxLayout()
        dest_row.addWidget(QLabel("Destination"))
        dest_row.addWidget(self.destination, 1)
        dest_row.addWidget(browse)
        self.export_button = QPushButton("Export")
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self.export)
        self.export_status = QLabel("")
        self.export_status.setWordWrap(True)
        self.export_status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.results_table = QTableWidget(0, 3)
        self.results_table.setHorizontalHeaderLabels(["Format", "File", "Verification"])
        self.results_table.verticalHeader().hide()
        self.results_table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.results_table.horizontalHeader().setSectionResizeMode(1, QHeaderView.Stretch)
        self.results_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeToContents)
        self.results_table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeToContents)
        target_layout = QVBoxLayout(target)
        target_layout.addLayout(formats_row)
        target_layout.addLayout(dest_row)
        buttons = QHBoxLayout()
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.export_status, 1)
        target_layout.addLayout(buttons)
        target_layout.addWidget(self.results_table, 1)

        trial = QGroupBox("Try it")
        self.drop = DropArea()
        self.drop.file_dropped.connect(self.try_image)
        self.try_model = QComboBox()
        self.try_model.setToolTip("Which exported file predicts")
        choose = QPushButton("Choose an image…")
        choose.clicked.connect(self._choose_image)
        self.prediction = QLabel("Export a model, then drop an image to see its prediction.")
        self.prediction.setWordWrap(True)
        self.prediction.setStyleSheet("font-size: 15px")
        self.probabilities = QLabel("")
        self.probabilities.setWordWrap(True)
        side = QVBoxLayout()
        side.addWidget(QLabel("Exported model"))
        side.addWidget(self.try_model)
        side.addWidget(choose)
        side.addWidget(self.prediction)
        side.addWidget(self.probabilities)
        side.addStretch(1)
        trial_layout = QHBoxLayout(trial)
        trial_layout.addWidget(self.drop)
        trial_layout.addLayout(side, 1)

        layout = QVBoxLayout(self)
        layout.addWidget(source)
        layout.addWidget(target, 1)
        layout.addWidget(trial, 1)

    @property
    def store(self):
        return getattr(self.ctx, "store", None)

    # ------------------------------------------------------------------ models
    def refresh_models(self, *args) -> None:
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        store = self.store
        models = store.models() if store is not None else []
        for model in reversed(models):
            info = model.get("info") or {}
            metrics = info.get("metrics") or {}
            acc = metrics.get("balanced_accuracy")
            text = f"{Path(model['path']).name} · {info.get('method', '?')}" + (
                f" · balanced accuracy {acc:.0%}" if isinstance(acc, float) else "")
            self.model_combo.addItem(text, model["path"])
        self.model_combo.blockSignals(False)
        self.export_button.setEnabled(bool(models) and self.worker is None)
        if store is not None and not self.destination.text():
            self.destination.setText(str(Path(store.project_dir) / "exports"))
        self._model_changed()

    def _model_changed(self, *args) -> None:
        path = self.model_combo.currentData()
        if not path:
            self.model_info.setText("No classifier yet: train one on the Classifier page.")
            return
        self.model_info.setText(f"Model folder: {path}")

    def _choose_destination(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export to", self.destination.text())
        if folder:
            self.destination.setText(folder)

    def selected_formats(self) -> list[str]:
        return [fmt for fmt, check in self.format_checks.items() if check.isChecked()]

    # ------------------------------------------------------------------ export
    def export(self) -> bool:
        model_dir = self.model_combo.currentData()
        formats = self.selected_formats()
        if not model_dir or not formats or self.worker is not None:
            self.export_status.setText("Choose a classifier and at least one format.")
            return False
        dest = Path(self.destination.text() or ".").expanduser()
        stem = Path(model_dir).name
        jobs = [(fmt, dest / f"{stem}{suffix}") for fmt, _t, suffix in FORMATS if fmt in formats]

        def work():
            dest.mkdir(parents=True, exist_ok=True)
            return [export_one(model_dir, fmt, path) for fmt, path in jobs]

        self.export_button.setEnabled(False)
        self.export_status.setText("Exporting and verifying…")
        self.worker = self.ctx.run_in_background(work, on_result=self._on_exported,
                                                 on_error=self._on_export_error)
        return True

    def _on_exported(self, results: list[dict]) -> None:
        self.worker = None
        self.export_button.setEnabled(True)
        self._show_results(results)
        self.export_status.setText(f"Exported {plural.count(len(results), 'file')}, each "
                                   f"verified against the model in the app.")
        store = self.store
        if store is not None and hasattr(store, "set_setting"):
            # Remember the exports (newest first, one row per file) so a reopened project shows them.
            keep = [{k: r.get(k) for k in ("format", "path", "max_abs_diff", "message")}
                    for r in results]
            paths = {r["path"] for r in keep}
            older = [r for r in (store.get_setting(EXPORTS_SETTING) or []) if r.get("path") not in paths]
            store.set_setting(EXPORTS_SETTING, (keep + older)[:MAX_REMEMBERED_EXPORTS])
        self.exported.emit(self.results)

    def restore_exports(self) -> None:
        """Show the exports this project remembers whose files still exist."""
        store = self.store
        remembered = store.get_setting(EXPORTS_SETTING) if store is not None and \
            hasattr(store, "get_setting") else None
        present = [r for r in (remembered or []) if r.get("path") and Path(r["path"]).exists()]
        self._show_results(present)
        if present:
            self.export_status.setText(
                f"{plural.count(len(present), 'earlier export')} of this project.")

    def _show_results(self, results: list[dict]) -> None:
        self.results = list(results)
        self.results_table.setRowCount(len(results))
        self.try_model.clear()
        for row, info in enumerate(results):
            diff = info.get("max_abs_diff")
            check = "reloaded and checked" if diff is None else f"max |Δ| = {float(diff):.2e}"
            for col, text in enumerate((info["format"], info["path"], check)):
                item = QTableWidgetItem(text)
                item.setToolTip(info.get("message") or text)
                self.results_table.setItem(row, col, item)
            if info["format"] in ("onnx", "torchscript"):
                self.try_model.addItem(Path(info["path"]).name, info["path"])

    def _on_export_error(self, *error) -> None:
        from sslstudio.gui.workers import error_text

        self.worker = None
        self.export_button.setEnabled(True)
        self.export_status.setText(f"<b>Export failed:</b> {error_text(error)}")

    # ------------------------------------------------------------------ try it
    def _choose_image(self) -> None:
        start = str(self.store.image_root) if self.store is not None else ""
        path, _ = QFileDialog.getOpenFileName(self, "Choose an image", start, IMAGE_FILTER)
        if path:
            self.try_image(path)

    def try_image(self, path: str) -> bool:
        model_path = self.try_model.currentData()
        if not model_path:
            self.prediction.setText("Export to ONNX or TorchScript first.")
            return False
        self.drop.show_image(path)
        self.prediction.setText(f"Predicting {Path(path).name}…")
        self.try_worker = self.ctx.run_in_background(
            predict_file, model_path, path, on_result=self._on_prediction,
            on_error=self._on_prediction_error)
        return True

    def _on_prediction(self, result) -> None:
        self.try_worker = None
        label, confidence, probs = result
        self.last_prediction = (label, confidence)
        self.prediction.setText(f"Prediction: <b>{label}</b> ({confidence:.1%})")
        top = sorted(probs.items(), key=lambda kv: -kv[1])[:5]
        self.probabilities.setText("   ".join(f"{k} {v:.1%}" for k, v in top))
        self.predicted.emit(label, confidence)

    def _on_prediction_error(self, *error) -> None:
        from sslstudio.gui.workers import error_text

        self.try_worker = None
        self.last_prediction = None
        self.prediction.setText(f"<b>Could not predict:</b> {error_text(error)}")
