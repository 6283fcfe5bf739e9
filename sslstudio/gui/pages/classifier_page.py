"""Classifier page: choose a method, train it in the background, read honest results."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from sslstudio.gui.classifier_process import classifier_fit
from sslstudio.gui.widgets.confusion_matrix import ConfusionMatrixView
from sslstudio.gui.widgets.plots import format_eta
from sslstudio.train.classifier_job import ClassifierJob
from sslstudio.train.time_left import TimeLeft

METHODS = ("linear", "semi", "propagate", "selftrain", "partial", "finetune", "scratch", "knn")
METHOD_TITLES = {
    "linear": "Linear probing",
    "semi": "Semi-supervised (uses unlabelled images)",
    "propagate": "Label propagation",
    "selftrain": "Self-training (trains the network on all images)",
    "partial": "Partial fine-tuning",
    "finetune": "Full fine-tuning",
    "scratch": "From scratch (baseline)",
    "knn": "k-nearest neighbours",
}
GUIDANCE = {
    "linear": "Freezes the pretrained backbone and fits a linear classifier on its features. "
              "Seconds on a CPU; the right choice with up to a few hundred labels.",
    "semi": "Linear probing that also learns from your unlabelled images: confident predictions "
            "become targets for augmented copies, kept class-balanced. Best with a few labels "
            "per class; under a minute on a CPU.",
    "propagate": "Spreads your labels to similar unlabelled images along the nearest-neighbour "
                 "graph of the features, then fits a linear classifier on all of them. Seconds.",
    "selftrain": "Starts from label propagation, then trains the whole network on your labels "
                 "and on confident guesses for every unlabelled image (FixMatch). The most "
                 "accurate with a few labels per class; minutes on a CPU.",
    "partial": "Trains the last stages of the backbone together with the head. "
               "Worth it with a thousand labels or more.",
    "finetune": "Trains the whole network from the pretrained weights with a small learning "
                "rate. For tens of thousands of labels; slow on a CPU.",
    "scratch": "The same network trained from random weights on your labels only: shows what "
               "pretraining bought you.",
    "knn": "Votes of the most similar labelled images in feature space. No training: a quick "
           "reference.",
}

# the Mirror images choice, as ClassifierJob.mirror (None: decided from the images)
MIRROR_CHOICES = (("Decide from the images", None),
                  ("Always (photos)", True),
                  ("Never (classes like b / d, ← / →)", False))


def backbone_note(run_dir) -> tuple[str, bool]:
    """A line about a run's backbone (task, steps) and whether its pretraining was short."""
    from sslstudio.train.downstream.recommend import (pretraining_summary,
                                                      short_pretraining_warning)

    if run_dir is None:
        return "No pretrained backbone: only the from-scratch baseline can train.", False
    summary = pretraining_summary(run_dir)
    if summary is None:
        return "", False   # an older or hand-made run: nothing reliable to say
    warning = short_pretraining_warning(summary["steps"])
    if warning is None:
        return (f"{summary['task']}, {summary['steps']:,} pretraining steps, "
                f"{summary['image_size'] or '?'} px."), False
    head, rest = warning.split(":", 1)
    return f"<b>{head[:1].upper()}{head[1:]}</b>:{rest[:-1]} (Pretrain page).", True


class ClassifierCore:
    """The few core calls this page makes, looked up once (the core owns the logic)."""

    @staticmethod
    def module():
        from sslstudio.train import classifier
        return classifier

    @classmethod
    def recommend(cls, labels: dict[str, str]) -> tuple[str, str]:
        counts: dict[str, int] = {}
        for name in labels.values():
            counts[name] = counts.get(name, 0) + 1
        n_labels, n_classes = len(labels), len(counts)
        try:
            result = cls.module().recommend_method(n_labels, n_classes)
        except TypeError:
            result = cls.module().recommend_method(counts)
        except Exception:  # noqa: BLE001 - fall back to the documented rule of thumb
            result = "linear" if n_labels < 1000 else "partial" if n_labels < 10_000 \
                else "finetune"
        if isinstance(result, tuple):
            return str(result[0]), str(result[1]) if len(result) > 1 else ""
        if isinstance(result, dict):
            return str(result.get("method")), str(result.get("reason", ""))
        method = getattr(result, "method", result)
        return str(method), str(getattr(result, "reason", ""))


class VerticalScrollArea(QScrollArea):
    """Scrolls its widget up and down only, and is as wide as the widget needs, so a
    splitter never squeezes the column narrower than its contents."""

    def __init__(self, widget: QWidget) -> None:
        super().__init__()
        self.setWidget(widget)
        self.setWidgetResizable(True)
        self.setFrameShape(QScrollArea.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

    def _with_inner_width(self, hint: QSize) -> QSize:
        inner = self.widget().minimumSizeHint().width() + self.verticalScrollBar().sizeHint().width()
        return QSize(max(hint.width(), inner), hint.height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return self._with_inner_width(super().minimumSizeHint())

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return self._with_inner_width(super().sizeHint())


class ClassifierPage(QWidget):
    title = "Classifier"

    training_finished = Signal(bool)     # True when a model was trained
    predictions_changed = Signal()

    def __init__(self, ctx, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.worker = None
        self.cancel_requested = False
        self.result = None
        self.report: dict = {}
        self.predictions: dict[str, tuple[str, float]] = {}
        self.model_dir: Path | None = None
        self.last_error = ""
        self.last_error_details = ""
        self._fit_project: Path | None = None   # the project the fit in flight belongs to
        self._shown_project: Path | None = None  # the project whose results are on show
        self._labels: dict[str, str] = {}       # as last read, for the recommendation
        self.time_left = TimeLeft()
        self._build()
        if hasattr(ctx, "project_changed"):
            ctx.project_changed.connect(self.on_project_changed)
        if hasattr(ctx, "labels_changed"):
            ctx.labels_changed.connect(self._labels_changed)
        self.on_project_changed()

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        left = QWidget()
        left_layout = QVBoxLayout(left)
        source_box = QGroupBox("Pretrained backbone")
        self.run_combo = QComboBox()
        source_layout = QVBoxLayout(source_box)
        source_layout.addWidget(self.run_combo)
        self.backbone_note = QLabel("")
        self.backbone_note.setWordWrap(True)
        source_layout.addWidget(self.backbone_note)
        self.run_combo.currentIndexChanged.connect(self._show_backbone_note)
        self.run_combo.currentIndexChanged.connect(self._show_recommendation)
        left_layout.addWidget(source_box)

        method_box = QGroupBox("Method")
        method_layout = QVBoxLayout(method_box)
        self.method_group = QButtonGroup(self)
        self.method_buttons: dict[str, QRadioButton] = {}
        for method in METHODS:
            button = QRadioButton(METHOD_TITLES[method])
            button.setToolTip(GUIDANCE[method])
            button.toggled.connect(lambda on, m=method: on and self._method_changed(m))
            self.method_group.addButton(button)
            self.method_buttons[method] = button
            method_layout.addWidget(button)
        self.guidance = QLabel("")
        self.guidance.setWordWrap(True)
        self.recommendation = QLabel("")
        self.recommendation.setWordWrap(True)
        self.recommendation.setStyleSheet("font-style: italic")
        method_layout.addWidget(self.guidance)
        method_layout.addWidget(self.recommendation)
        self.efficiency_check = QCheckBox("Also compare pretrained vs scratch by label count")
        self.efficiency_check.setToolTip("Label-efficiency chart: accuracy with 1, 5, 10, 25 "
                                         "labels per class (takes longer)")
        method_layout.addWidget(self.efficiency_check)
        mirror_row = QHBoxLayout()
        mirror_row.addWidget(QLabel("Mirror images:"))
        self.mirror_combo = QComboBox()
        for text, choice in MIRROR_CHOICES:
            self.mirror_combo.addItem(text, choice)
        self.mirror_combo.setToolTip(
            "Averaging each image with its mirror image, and training on mirrored views, helps "
            "photos, where a mirrored scene is as likely as the original. It hurts text and "
            "digits, and cannot tell apart classes that are mirror images of each other. By "
            "default the app looks at the images and leaves handed ones (text, digits) "
            "unmirrored; choose Always for photos it takes for handed (burst shots, video "
            "frames), Never for classes such as b / d or ← / →")
        mirror_row.addWidget(self.mirror_combo, 1)
        method_layout.addLayout(mirror_row)
        left_layout.addWidget(method_box)

        self.labels_summary = QLabel("")
        self.labels_summary.setWordWrap(True)

        self.train_button = QPushButton("Train classifier")
        self.train_button.clicked.connect(self.train)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setValue(0)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        self.curve = pg.PlotWidget(title="Training (validation)")
        self.curve.setBackground(None)
        self.curve.setMinimumHeight(140)
        self.curve.showGrid(x=True, y=True, alpha=0.2)
        self.curve_item = self.curve.plot(pen=pg.mkPen("#1f77b4", width=2))
        self.curve.hide()
        left_layout.addWidget(self.curve)
        left_layout.addStretch(1)

        # results
        self.figures = QLabel("No classifier yet.")
        self.figures.setStyleSheet("font-size: 15px")
        self.figures.setWordWrap(True)
        # what the fit noticed (images left unmirrored, too few labels for a class…), beside
        # the figures it qualifies rather than under the left column's fold
        self.fit_notes = QLabel("")
        self.fit_notes.setWordWrap(True)
        self.fit_notes.setStyleSheet("font-size: 13px; font-style: italic")
        self.fit_notes.hide()
        self.confusion = ConfusionMatrixView()
        self.confusion.cell_opened.connect(self._open_cell)
        self.per_class = QTableWidget(0, 4)
        self.per_class.setHorizontalHeaderLabels(["Class", "Precision", "Recall", "Labels"])
        self.per_class.verticalHeader().hide()
        self.per_class.setEditTriggers(QAbstractItemView.NoEditTriggers)
        header = self.per_class.horizontalHeader()
        # the figures as wide as they need, the class name the rest; in a narrow window the
        # confusion matrix gives way, not "Precision" (clipped to "ecisi")
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.Stretch)
        self.per_class.setMinimumWidth(sum(header.sectionSizeFromContents(i).width()
                                           for i in range(4)) + 2 * self.per_class.frameWidth())
        matrix_tab = QWidget()
        matrix_layout = QHBoxLayout(matrix_tab)
        matrix_box = QVBoxLayout()
        matrix_caption = QLabel("Confusion matrix on validation images: rows are the true class, "
                                "columns the predicted one (click a cell for its images)")
        matrix_caption.setWordWrap(True)
        matrix_box.addWidget(matrix_caption)
        matrix_box.addWidget(self.confusion, 1)
        matrix_layout.addLayout(matrix_box, 3)
        matrix_layout.addWidget(self.per_class, 2)

        self.predictions_list = QListWidget()
        self.predictions_list.setViewMode(QListWidget.IconMode)
        self.predictions_list.setIconSize(QSize(72, 72))
        self.predictions_list.setResizeMode(QListWidget.Adjust)
        self.predictions_list.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.predictions_list.setGridSize(QSize(120, 112))
        self.predictions_note = QLabel("Unlabelled images, least confident first: "
                                       "label these next.")
        predictions_tab = QWidget()
        predictions_layout = QVBoxLayout(predictions_tab)
        predictions_layout.addWidget(self.predictions_note)
        predictions_layout.addWidget(self.predictions_list, 1)

        self.efficiency = pg.PlotWidget(title="Accuracy vs labels per class")
        self.efficiency.setBackground(None)
        self.efficiency.addLegend()
        self.efficiency.showGrid(x=True, y=True, alpha=0.2)
        self.efficiency.setLabel("bottom", "labels per class")
        self.efficiency.setLabel("left", "balanced accuracy")
        self.efficiency.setLogMode(x=True, y=False)

        self.tabs = QTabWidget()
        self.tabs.addTab(matrix_tab, "Confusion matrix")
        self.tabs.addTab(predictions_tab, "Predictions")
        self.tabs.addTab(self.efficiency, "Label efficiency")
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.figures)
        right_layout.addWidget(self.fit_notes)
        right_layout.addWidget(self.tabs, 1)

        # the settings column scrolls rather than squeezing its wrapped texts into each other
        # when it is taller than the window (a short-pretraining warning, a small screen)
        left_scroll = VerticalScrollArea(left)
        # the button, the bar and the outcome stay in sight below it, however long it is
        column = QWidget()
        column_layout = QVBoxLayout(column)
        column_layout.setContentsMargins(0, 0, 0, 0)
        column_layout.addWidget(left_scroll, 1)
        controls = QVBoxLayout()
        controls.setContentsMargins(9, 0, 9, 0)
        controls.addWidget(self.labels_summary)
        buttons = QHBoxLayout()
        buttons.addWidget(self.train_button)
        buttons.addWidget(self.cancel_button)
        controls.addLayout(buttons)
        controls.addWidget(self.progress)
        controls.addWidget(self.status_label)
        column_layout.addLayout(controls)
        split = QSplitter(Qt.Horizontal)
        split.addWidget(column)
        split.addWidget(right)
        split.setSizes([380, 900])
        layout = QHBoxLayout(self)
        layout.addWidget(split)

    @property
    def store(self):
        return getattr(self.ctx, "store", None)

    # ------------------------------------------------------------------ project / labels
    def on_project_changed(self, *args) -> None:
        self.run_combo.clear()
        store = self.store
        project = Path(store.project_dir) if store is not None else None
        if project != self._shown_project:
            self._clear_results()   # the last fit's figures belong to its own project
            self._shown_project = project
        self.train_button.setEnabled(store is not None and self.worker is None)
        if store is None:
            return
        from sslstudio.gui.pages.inspect_page import backbone_runs

        for run in backbone_runs(store):
            config = run.get("config") or {}
            self.run_combo.addItem(f"{Path(run['path']).name} · {config.get('task', '?')} · "
                                   f"{config.get('backbone', '?')}", run["path"])
        self.run_combo.addItem("none (scratch only)", None)
        self._labels_changed()
        models = store.models() if hasattr(store, "models") else []
        if models and not self.report:
            info = models[-1].get("info") or {}
            metrics = info.get("metrics") or info.get("report") or {}
            if metrics.get("confusion_matrix") and metrics.get("classes"):
                self.confusion.set_matrix(metrics["classes"], metrics["confusion_matrix"])
                self._show_figures(metrics, info.get("method", ""))
                self._fill_per_class(metrics)  # reopening shows the whole result, not half

    def _clear_results(self) -> None:
        self.result, self.report, self.model_dir = None, {}, None
        self.predictions = {}
        self.figures.setText("No classifier yet.")
        self.fit_notes.clear()
        self.fit_notes.hide()
        self.confusion.set_results([], {}, {})
        self.per_class.setRowCount(0)
        self.predictions_list.clear()
        self.efficiency.clear()
        self._draw_history([])
        if self.worker is None:   # a fit in flight keeps telling how it goes
            self.status_label.setText("")
            self.progress.setValue(0)

    def _show_backbone_note(self, *args) -> None:
        text, short = backbone_note(self.run_combo.currentData()) if self.run_combo.count() \
            else ("", False)
        self.backbone_note.setText(text)
        self.backbone_note.setStyleSheet("color: #b35900" if short else "color: palette(mid)")
        self.backbone_note.setVisible(bool(text))

    def refresh_runs(self) -> None:
        self.on_project_changed()

    def _labels_changed(self, *args) -> None:
        store = self.store
        if store is None:
            return
        labels = store.labels(present_only=True) if _accepts_present_only(store) \
            else store.labels()
        counts: dict[str, int] = {}
        for name in labels.values():
            counts[name] = counts.get(name, 0) + 1
        # "7 (12)", as the Label page lists them: "7 12" misreads where classes are numbers
        text = ", ".join(f"{name} ({n})" for name, n in sorted(counts.items()))
        self.labels_summary.setText(f"{len(labels)} labels in {len(counts)} classes"
                                    + (f": {text}" if text else "") + ".")
        self._labels = labels
        self._show_recommendation()

    def _show_recommendation(self, *args) -> None:
        """The method for the labels as last read, and what must come first (the backbone
        choice changes it too, without reading the labels again)."""
        method, reason = ClassifierCore.recommend(self._labels)
        if method in self.method_buttons:
            self.recommended = method
            first = []   # what must happen before any fit, said before the method's reason
            if self.run_combo.count() and self.run_combo.currentData() is None:
                first.append("pretrain a backbone (Pretrain page): every method but From "
                             "scratch starts from one")
            if len(set(self._labels.values())) < 2:
                first.append("label images of at least two classes (Label page)")
            if first:
                self.recommendation.setText(
                    f"First {'; then '.join(first)}. Then {METHOD_TITLES[method]} is the "
                    f"recommended method.")
            else:   # the reason is a whole sentence of its own
                self.recommendation.setText(
                    f"Recommended: {METHOD_TITLES[method]}. {reason}".strip())
            if not any(b.isChecked() for b in self.method_buttons.values()):
                self.method_buttons[method].setChecked(True)

    def _method_changed(self, method: str) -> None:
        try:
            from sslstudio.train.classifier import METHOD_GUIDE
            self.guidance.setText(METHOD_GUIDE.get(method, GUIDANCE[method]))
        except ImportError:
            self.guidance.setText(GUIDANCE[method])

    def selected_method(self) -> str:
        for method, button in self.method_buttons.items():
            if button.isChecked():
                return method
        return "linear"

    def set_method(self, method: str) -> None:
        self.method_buttons[method].setChecked(True)

    # ------------------------------------------------------------------ training
    def train(self) -> bool:
        store = self.store
        if store is None or self.worker is not None:
            return False
        labels = store.labels()
        if len(set(labels.values())) < 2:
            self.status_label.setText("Label images of at least two classes first "
                                      "(Label page, or lasso a cluster on Inspect).")
            return False
        method = self.selected_method()
        run_dir = self.run_combo.currentData()
        if run_dir is None and method not in ("scratch",):
            self.status_label.setText(f"{METHOD_TITLES[method]} needs a pretrained backbone: "
                                      "pretrain first, or choose 'From scratch'.")
            return False
        stamp = time.strftime("%Y%m%d-%H%M%S")
        model_dir = Path(store.models_dir) / f"{stamp}-{method}"
        for n in range(2, 1000):   # two quick fits in one second must not share a folder
            if not model_dir.exists():
                break
            model_dir = Path(store.models_dir) / f"{stamp}-{method}-{n}"
        self.cancel_requested = False
        self.last_error = ""
        self.progress.setRange(0, 0)
        self.progress.setFormat("%p%")
        self.time_left = TimeLeft()
        self.status_label.setText(f"Training the classifier: {METHOD_TITLES[method]}…")
        self.train_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self._draw_history([])   # drawn from the fit's history when it ends
        job = ClassifierJob(project_dir=str(store.project_dir),
                            run_dir=None if run_dir is None else str(run_dir), method=method,
                            model_dir=str(model_dir), labels=dict(labels),
                            efficiency=self.efficiency_check.isChecked(),
                            mirror=self.mirror_combo.currentData())
        process = classifier_fit(job, Path(store.cache_dir) / "classifier-jobs", parent=self)
        process.progress.connect(self._on_progress)
        process.finished.connect(self._on_finished)
        self.worker = process
        self._fit_project = Path(store.project_dir)
        try:
            process.start()
        except OSError as exc:
            self._on_error(f"cannot write the job folder: {exc}")
            return False
        return True

    def _on_finished(self, outcome: dict) -> None:
        if outcome.get("status") == "done":
            self._on_result(outcome)
            return
        self.last_error_details = str(outcome.get("details") or "")
        self._on_error("cancelled" if outcome.get("status") == "cancelled"
                       else str(outcome.get("message") or "unknown error"))

    def shutdown(self) -> None:
        """The window closes: a fit in flight is cancelled (it saves nothing half-done)."""
        if self.worker is not None:
            self.worker.shutdown()

    def cancel(self) -> None:
        if self.worker is None:
            return
        self.cancel_requested = True
        self.worker.cancel()
        self.status_label.setText("Cancelling…")
        self.cancel_button.setEnabled(False)

    def is_running(self) -> bool:
        return self.worker is not None

    def _on_progress(self, done: int, total: int) -> None:
        if not total:
            return
        self.progress.setRange(0, int(total))
        self.progress.setValue(int(done))
        left = self.time_left.update(done, total)
        self.progress.setFormat("%p%" if left is None or done >= total
                                else f"%p% · ETA {format_eta(left)}")

    def _on_error(self, *error) -> None:
        from sslstudio.gui.workers import error_text

        self.worker = None
        self.progress.setFormat("%p%")
        self.train_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        message = error_text(error)
        if self.cancel_requested or "cancel" in message.lower():
            self.status_label.setText("Cancelled: nothing was saved.")
        else:
            self.last_error = message
            self.status_label.setText(f"<b>Training failed:</b> {message}")
        self.training_finished.emit(False)

    def _on_result(self, outcome: dict) -> None:
        self.worker = None
        self.progress.setFormat("%p%")
        self.train_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        problem = self._register_model(outcome)
        if not self._is_fit_project(self.store):
            # another project was opened while this fit ran: its results belong to the first
            self.status_label.setText(
                f"The classifier for the project in {self._fit_project} finished and was "
                f"saved there." + (f"<br>{problem}" if problem else ""))
            self.training_finished.emit(True)
            return
        self.result = outcome
        self.report = outcome.get("report") or {}
        self.model_dir = outcome.get("model_dir")
        method = outcome.get("method", "")
        self._show_figures(self.report, method)
        self._draw_history(outcome.get("history") or [])
        classes = self.report.get("classes") or sorted(set(outcome.get("truth", {}).values()))
        self.confusion.set_results(classes, outcome.get("truth", {}), outcome.get("validated", {}))
        self._fill_per_class(self.report)
        self.predictions = {r: tuple(p) for r, p in outcome.get("predictions", {}).items()}
        self._fill_predictions()
        self._show_sample_check()
        if outcome.get("efficiency"):
            self._draw_efficiency(outcome["efficiency"])
        try:
            self.ctx.predictions = dict(self.predictions)
        except AttributeError:
            pass
        for name in ("predictions_changed",):
            signal = getattr(self.ctx, name, None)
            if signal is not None and hasattr(signal, "emit"):
                signal.emit()
        self.predictions_changed.emit()
        notes = list(outcome.get("notes") or [])
        self.fit_notes.setText("<br>".join(notes))
        self.fit_notes.setVisible(bool(notes))
        self.status_label.setText(f"Saved to {self.model_dir}." + (
            f"<br>{problem}" if problem else ""))
        if hasattr(self.ctx, "status"):
            try:
                self.ctx.status("Classifier trained")
            except Exception:  # noqa: BLE001
                pass
        self.training_finished.emit(True)

    # ------------------------------------------------------------------ results
    def _is_fit_project(self, store) -> bool:
        return store is not None and Path(store.project_dir) == self._fit_project

    def _register_model(self, outcome: dict) -> str:
        """Record the saved model in the project it was trained for (the Export page lists
        it from there), even when another project is open by now; "" or what went wrong."""
        from sslstudio.project.store import ProjectStore

        store = self.store if self._is_fit_project(self.store) else None
        try:
            own = store or ProjectStore.open(self._fit_project)
            try:
                report = outcome.get("report") or {}
                own.add_model(outcome["model_dir"], {
                    "method": outcome.get("method", ""), "run": outcome.get("run_dir"),
                    "metrics": _jsonable_report(report), "classes": report.get("classes")})
            finally:
                if own is not store:
                    own.close()
        except Exception as exc:  # noqa: BLE001 - the model folder is saved either way
            return (f"The model folder is saved, but the project could not record it "
                    f"({exc}); the Export page will not list it.")
        return ""

    def sample_check(self) -> tuple[int, int] | None:
        """(right, total) over the unlabelled images whose true label is known.

        Only the built-in sample ships its true labels (a hidden file beside the
        images); there the demo can show how well a few labels did on thousands of
        images nobody labelled. Any other folder returns None.
        """
        store = self.store
        if store is None or not self.predictions:
            return None
        from sslstudio.data.sample import sample_truth

        try:
            truth = sample_truth(store.image_root)
        except (OSError, ValueError, KeyError):  # not the sample, or an odd file
            return None
        if not truth:
            return None
        labelled = set(store.labels())
        pairs = [(truth[r], p[0]) for r, p in self.predictions.items()
                 if r in truth and r not in labelled]
        if not pairs:
            return None
        return sum(t == p for t, p in pairs), len(pairs)

    def _show_sample_check(self) -> None:
        check = self.sample_check()
        if check is None:
            return
        right, total = check
        self.figures.setText(
            self.figures.text() + f"<br><span style='font-size: 13px'>Sample dataset: "
            f"<b>{right / total:.1%}</b> of the {total:,} images you did not label are "
            f"predicted right (the sample ships their true labels).</span>")

    def _show_figures(self, report: dict, method: str) -> None:
        if not report or report.get("accuracy") is None:
            self.figures.setText(f"{METHOD_TITLES.get(method, method)}: not enough labels to "
                                 "validate (label at least two images in two classes).")
            return
        # the core's wording; torch is already loaded here (ClassifierCore.recommend)
        from sslstudio.train.downstream.metrics import interval_text

        spread = interval_text(report)   # "" for models saved before the interval existed
        self.figures.setText(
            f"<b>{METHOD_TITLES.get(method, method)}</b> — accuracy "
            f"<b>{report['accuracy']:.1%}</b>{spread}, balanced accuracy "
            f"<b>{report['balanced_accuracy']:.1%}</b> on {report.get('n', '?')} validated "
            f"labels ({report.get('scheme', 'held-out folds')}; never training accuracy).")

    def _draw_history(self, history: list) -> None:
        """The fine-tuned fits' validation score per epoch (mean over the folds)."""
        points = [(i + 1, float(v)) for i, v in enumerate(history) if v is not None]
        self.curve_item.setData([x for x, _ in points], [y for _, y in points])
        self.curve.setVisible(bool(points))

    def _fill_per_class(self, report: dict) -> None:
        rows = list((report.get("per_class") or {}).items())
        self.per_class.setRowCount(len(rows))
        for r, (name, row) in enumerate(rows):
            values = [name, _pct(row.get("precision")), _pct(row.get("recall")),
                      str(row.get("support", ""))]
            for c, text in enumerate(values):
                self.per_class.setItem(r, c, QTableWidgetItem(text))

    def _fill_predictions(self) -> None:
        self.predictions_list.clear()
        store = self.store
        labelled = set(store.labels()) if store is not None else set()
        pending = [(r, p) for r, p in self.predictions.items() if r not in labelled]
        pending.sort(key=lambda item: item[1][1])
        for relpath, (name, confidence) in pending[:500]:
            item = QListWidgetItem(f"{name}\n{confidence:.0%}")
            pixmap = self._thumbnail(relpath)
            if pixmap is not None:
                item.setIcon(QIcon(pixmap))
            item.setToolTip(f"{relpath}: {name} ({confidence:.1%})")
            item.setData(Qt.UserRole, relpath)
            self.predictions_list.addItem(item)
        self.predictions_note.setText(
            f"{len(pending)} unlabelled images, least confident first: label these next.")

    def least_confident(self) -> list[str]:
        return [self.predictions_list.item(i).data(Qt.UserRole)
                for i in range(self.predictions_list.count())]

    def _draw_efficiency(self, efficiency) -> None:
        self.efficiency.clear()
        colors = {"pretrained": "#1f77b4", "scratch": "#d62728"}
        rows = efficiency if isinstance(efficiency, list) else efficiency.get("rows", [])
        series: dict[str, dict[int, list[float]]] = {}
        for row in rows:
            key = "scratch" if "scratch" in str(row.get("method", "")) else "pretrained"
            value = row.get("balanced_accuracy", row.get("accuracy", row.get("mean")))
            per_class = row.get("per_class", row.get("labels_per_class"))
            if value is not None and per_class is not None:
                series.setdefault(key, {}).setdefault(int(per_class), []).append(float(value))
        for key, points in series.items():
            xs = sorted(points)
            ys = [float(np.mean(points[x])) for x in xs]
            self.efficiency.plot(xs, ys, pen=pg.mkPen(colors.get(key, "#555"), width=2),
                                 symbol="o", symbolBrush=colors.get(key, "#555"), name=key)

    def _thumbnail(self, relpath: str) -> QPixmap | None:
        store = self.store
        if store is None:
            return None
        pixmap = QPixmap(str(Path(store.image_root) / relpath))
        return None if pixmap.isNull() else pixmap.scaled(72, 72, Qt.KeepAspectRatio,
                                                          Qt.SmoothTransformation)

    def _open_cell(self, true_class: str, predicted: str, relpaths: list) -> None:
        """Show the images behind a confusion-matrix cell in a small non-modal window."""
        dialog = QDialog(self)
        dialog.setWindowTitle(f"True {true_class}, predicted {predicted}: {len(relpaths)} images")
        images = QListWidget()
        images.setViewMode(QListWidget.IconMode)
        images.setIconSize(QSize(96, 96))
        images.setResizeMode(QListWidget.Adjust)
        for relpath in relpaths:
            item = QListWidgetItem(Path(relpath).name)
            pixmap = self._thumbnail(relpath)
            if pixmap is not None:
                item.setIcon(QIcon(pixmap))
            item.setToolTip(relpath)
            images.addItem(item)
        QVBoxLayout(dialog).addWidget(images)
        dialog.resize(560, 420)
        dialog.setAttribute(Qt.WA_DeleteOnClose)
        dialog.show()
        self.cell_dialog = dialog


def _pct(value) -> str:
    return "—" if value is None else f"{value:.0%}"


def _jsonable_report(report: dict) -> dict:
    return {k: v for k, v in report.items() if k in (
        "n", "accuracy", "accuracy_interval", "balanced_accuracy", "per_class",
        "confusion_matrix", "classes", "scheme")}


def _accepts_present_only(store) -> bool:
    import inspect

    try:
        return "present_only" in inspect.signature(store.labels).parameters
    except (TypeError, ValueError):
        return False
