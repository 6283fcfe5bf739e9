"""Pretrain page: choose a pretext task and settings, run it in the background, watch it live."""

from __future__ import annotations

import dataclasses
import html
import json
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from sslstudio.gui.run_bridge import RunFollower, read_events
from sslstudio.gui.run_process import PretrainProcess
from sslstudio.gui.widgets.plots import TrainingPlots
from sslstudio.gui.widgets.preview_grid import array_to_pixmap
from sslstudio.gui.widgets.task_options import TaskOptionsForm

BACKBONE_CHOICES = ("small_cnn", "resnet18", "resnet34", "resnet50")


# ---------------------------------------------------------------------------- shared run hub
class RunHub(QObject):
    """One per app context: the page that runs training announces, other pages listen."""

    run_started = Signal(str, dict)     # run folder, config
    event = Signal(dict)                # every event of the active or followed run
    run_finished = Signal(str, str)     # status, message


def run_hub(ctx) -> RunHub:
    hub = getattr(ctx, "_sslstudio_run_hub", None)
    if hub is None:
        hub = RunHub()
        try:
            setattr(ctx, "_sslstudio_run_hub", hub)
        except AttributeError:  # a context with __slots__: fall back to a module-level hub
            global _FALLBACK_HUB
            hub = _FALLBACK_HUB = globals().get("_FALLBACK_HUB") or RunHub()
    return hub


# ---------------------------------------------------------------------------- helpers
def failure_advice(message: str) -> str:
    """A suggestion for a failed run, from the engine's message."""
    text = message.lower()
    if "out of memory" in text or "oom" in text:
        return "Try a smaller batch size or image size, or a smaller backbone."
    if "nan" in text or "inf" in text and "loss" in text:
        return "The loss diverged: lower the learning rate (Advanced) and start again."
    if "decode" in text or "unreadable" in text or "cannot read" in text or "no images" in text:
        return "Check the image folder on the Data page: rescan it and look at the unreadable files."
    if "colour" in text or "color" in text or "grayscale" in text:
        return "This task needs colour images; choose another task for a grayscale dataset."
    return "Check the settings and start again; the run folder keeps the log (metrics.jsonl)."


def suggested_defaults(num_images: int, device: str) -> dict:
    """Settings that give a useful backbone in minutes on this device and dataset size.

    Chosen by measurement (benchmarks/bench_cpu_budget.py, docs/benchmarks-pretext.md):
    on a 2-core CPU, 4 minutes of contrastive learning at 32 px lifted the kNN accuracy
    of the features far above raw pixels, while rotation (either size) stayed at the
    level of random weights; 32 px buys 4× the steps of 64 px in the same time.
    """
    gpu = device.startswith("cuda") or device.startswith("mps")
    if gpu:
        backbone, size, batch = ("resnet18", 96, 256) if num_images < 50_000 else ("resnet50", 128, 256)
    else:
        backbone, size, batch = "small_cnn", 32, 64
    if num_images < 2_000:
        epochs = 30
    elif num_images < 20_000:
        epochs = 10
    else:
        epochs = 3
    # On a CPU an epoch count can mean an hour, so the CPU default is a wall-clock budget;
    # the engine plans its steps (and the learning-rate schedule) from the measured speed.
    return {"task": "contrastive", "backbone": backbone, "image_size": size,
            "batch_size": min(batch, max(8, num_images)),
            "epochs": epochs, "minutes": 10 if not gpu else 15, "lr": 1e-3 if not gpu else 2e-3,
            "budget_kind": "epochs" if gpu else "minutes"}


def load_tasks() -> dict:
    try:
        from sslstudio.pretext import TASKS
        return dict(TASKS)
    except Exception:  # noqa: BLE001 - the registry may be missing while core is written
        return {}


def device_choices() -> list[tuple[str, str]]:
    """(value, text) pairs for the device combo, from the core's device_summary()."""
    choices = [("auto", "Automatic (best available)")]
    try:
        from sslstudio.train.device import device_summary
        summary = device_summary()
    except Exception:  # noqa: BLE001
        return choices + [("cpu", "CPU")]
    entries = summary if isinstance(summary, list) else summary.get("devices", summary) \
        if isinstance(summary, dict) else []
    if isinstance(entries, dict):
        entries = [{"device": k, "name": v} if not isinstance(v, dict) else {"device": k, **v}
                   for k, v in entries.items()]
    seen = set()
    for entry in entries or []:
        if isinstance(entry, str):
            value, text = entry.split(":")[0] if entry.startswith("cpu") else entry, entry
        else:
            value = str(entry.get("device") or entry.get("type") or entry.get("name") or "cpu")
            text = _describe_device(entry)
        if value not in seen:
            seen.add(value)
            choices.append((value, text))
    if "cpu" not in seen:
        choices.append(("cpu", "CPU"))
    return choices


def _describe_device(entry: dict) -> str:
    name = entry.get("name") or entry.get("device") or "device"
    bits = [str(name)]
    memory = entry.get("memory_gb") or entry.get("total_memory_gb")
    if memory is None and entry.get("memory_mb"):
        memory = entry["memory_mb"] / 1024
    if memory is None and entry.get("total_memory"):
        memory = entry["total_memory"] / 2**30
    if memory:
        bits.append(f"{float(memory):.0f} GB")
    if entry.get("cores") or entry.get("threads"):
        bits.append(f"{entry.get('cores') or entry.get('threads')} cores")
    kind = str(entry.get("device") or entry.get("type") or "")
    if kind and kind.lower() not in str(name).lower():
        bits.insert(0, kind.upper())
    return " · ".join(bits)


def render_task_example(task_cls, images: np.ndarray,
                        options: dict | None = None) -> np.ndarray | None:
    """Run task.make_batch (with the task's `options`) on a few images and lay out inputs
    (and image targets) as one strip.

    Runs in a worker. Returns H×W×3 uint8, or None when the task's batch is not image-like.
    """
    import torch

    task = task_cls(**(options or {}))
    batch = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    with torch.no_grad():
        inputs, targets = task.make_batch(batch)
    rows = [_tensor_images(inputs), _tensor_images(targets)]
    rows = [row for row in rows if row is not None]
    if not rows:
        return None
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 2), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.concatenate(rows, axis=0)


def example_or_none(task_cls, images: np.ndarray, options: dict) -> np.ndarray | None:
    """The card's picture, or None where the task cannot show these images (e.g. colorization
    of grayscale ones)."""
    try:
        return render_task_example(task_cls, images, options)
    except Exception:  # noqa: BLE001
        return None


def task_problem(task_cls, images: np.ndarray, n_images: int | None = None) -> str | None:
    """Why the task cannot learn from these images (colorization of grayscale ones, or too
    few of them for contrastive learning: `n_images` readable ones in the project), by the
    engine's own checks; None when they suit it."""
    from sslstudio.train.pretrain import task_image_problem, too_few_images

    if n_images is not None and (message := too_few_images(task_cls, n_images)):
        return message
    if not getattr(task_cls, "requires_color", False):
        return None   # no task to build for the tasks that take any image
    try:
        return task_image_problem(task_cls(), images)
    except Exception:  # noqa: BLE001 - the engine checks again at the start of a run
        return None


def _tensor_images(value, limit: int = 4, size: int = 48) -> np.ndarray | None:
    import torch
    import torch.nn.functional as F

    if isinstance(value, (tuple, list)):
        # every part (e.g. inpainting's truth and mask) shows the same images, one row each,
        # so the rows line up instead of leaving white gaps
        parts = [p for p in (_tensor_images(v, limit=limit, size=size)
                             for v in value) if p is not None]
        if not parts:
            return None
        width = max(p.shape[1] for p in parts)
        return np.concatenate([np.pad(p, ((0, 2), (0, width - p.shape[1]), (0, 0)),
                                      constant_values=255) for p in parts], axis=0)
    if isinstance(value, dict):
        return _tensor_images(list(value.values()), limit, size)
    if not torch.is_tensor(value) or value.dim() < 4 or not value.is_floating_point():
        return None
    x = value.detach().float().cpu()
    while x.dim() > 4:  # e.g. jigsaw tiles N×T×C×h×w: show the first image's tiles
        x = x[0]
    if x.shape[1] not in (1, 2, 3):
        return None
    x = x[:limit]
    if x.shape[1] == 2:  # ab channels: show as a false-colour image
        x = torch.cat([torch.full_like(x[:, :1], 0.5), x], dim=1)
    lo, hi = float(x.min()), float(x.max())
    if lo < -0.01 or hi > 1.01:
        x = (x - lo) / max(hi - lo, 1e-6)
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    x = F.interpolate(x, size=(size, size), mode="nearest")
    strip = (x.clamp(0, 1) * 255).byte().permute(0, 2, 3, 1).numpy()
    gap = np.full((size, 2, 3), 255, np.uint8)
    pieces = []
    for img in strip:
        pieces += [img, gap]
    return np.concatenate(pieces[:-1], axis=1)


def sample_images(store, count: int = 4, size: int = 64,
                  relpaths: list[str] | None = None) -> np.ndarray:
    """A few decoded images of the project (from the decoded cache when one exists);
    `relpaths`: the project's images when the caller has listed them already."""
    from sslstudio.data.decode import load_square

    relpaths = store.image_relpaths() if relpaths is None else relpaths
    if not relpaths:
        raise ValueError("the project has no images yet")
    picks = np.linspace(0, len(relpaths) - 1, num=min(count, len(relpaths))).astype(int)
    images = []
    for i in picks:
        try:
            images.append(load_square(Path(store.image_root) / relpaths[i], size))
        except Exception:  # noqa: BLE001 - an unreadable file just gives one less example
            continue
    if not images:
        raise ValueError("none of the sampled images could be read")
    return np.stack(images)


def build_config(values: dict):
    """A PretrainConfig from the page's values, keeping only the fields the engine knows."""
    from sslstudio.train.pretrain import PretrainConfig

    if dataclasses.is_dataclass(PretrainConfig):
        known = {f.name for f in dataclasses.fields(PretrainConfig)}
        aliases = {"run_dir": ("out", "out_dir", "output_dir"),
                   "image_root": ("folder", "image_folder", "data_dir", "root"),
                   "cache_dir": ("cache",), "preview_every": ("preview_every_steps",)}
        kwargs = {}
        for key, value in values.items():
            if key in known:
                kwargs[key] = value
                continue
            for alias in aliases.get(key, ()):
                if alias in known:
                    kwargs[alias] = value
                    break
        return PretrainConfig(**kwargs)
    return PretrainConfig(**values)


def config_to_dict(config) -> dict:
    if dataclasses.is_dataclass(config):
        return json.loads(json.dumps(dataclasses.asdict(config), default=str))
    return dict(vars(config))


def summarize_events(events: list[dict]) -> dict:
    """Final figures of a run for the run list: last loss, metrics, quality, steps."""
    summary: dict = {}
    for event in events:
        kind = event.get("kind")
        if kind == "step":
            summary["steps"] = event.get("step")
            summary["loss"] = event.get("loss")
            for name, value in (event.get("metrics") or {}).items():
                summary[name] = value
        elif kind == "quality":
            for name in ("effective_rank", "knn_accuracy"):
                if event.get(name) is not None:
                    summary[name] = event[name]
        elif kind == "end":
            summary["status"] = event.get("status")
            if event.get("message"):
                summary["message"] = event.get("message")
    return summary


RESUMABLE = ("stopped", "interrupted")


def _has_checkpoint(run_dir: Path) -> bool:
    # the page module already imported torch (through the task registry), so this is cheap
    from sslstudio.train.checkpoint import checkpoint_path, has_checkpoint

    return has_checkpoint(checkpoint_path(run_dir))


def settle_unfinished_runs(store) -> int:
    """Runs the store still calls "running" although no app runs them (the app was closed
    or crashed mid-run): take the outcome from their log, or call them interrupted."""
    settled = 0
    for run in store.runs("pretrain"):
        if run.get("status") != "running":
            continue
        events = read_events(run["path"])
        summary = summarize_events(events)
        status = summary.get("status")
        if status is None:
            status = "interrupted"
            summary["message"] = ("the app closed before the run ended"
                                  + ("; Continue resumes it from its checkpoint"
                                     if _has_checkpoint(Path(run["path"])) else ""))
        summary["status"] = status
        store.update_run(run["id"], status=status, summary=summary)
        settled += 1
    return settled


def _collapsible(title: str, body: QWidget) -> QWidget:
    """A collapsed section holding `body` (a plain group box when superqt is missing)."""
    try:
        from superqt import QCollapsible
        section = QCollapsible(title, collapsedIcon="▶")   # superqt says ▲, which reads "open"
        section.addWidget(body)
        section.collapse(animate=False)
        return section
    except Exception:  # noqa: BLE001
        box = QGroupBox(title)
        QVBoxLayout(box).addWidget(body)
        return box


def _set_title(section: QWidget, title: str) -> None:
    if isinstance(section, QGroupBox):
        section.setTitle(title)
    else:
        section.setText(title)


# ---------------------------------------------------------------------------- task cards
class TaskCard(QFrame):
    # the picked card is outlined: with five cards in a scroll area, a lone radio dot was
    # easy to miss (the default card sat below the fold)
    PICKED_STYLE = "#taskCard { border: 2px solid palette(highlight); border-radius: 4px; }"

    def __init__(self, name: str, task_cls, group: QButtonGroup,
                 recommended: bool = False) -> None:
        super().__init__()
        self.name = name
        self.title = getattr(task_cls, "title", name)
        self.setObjectName("taskCard")
        self.setFrameShape(QFrame.StyledPanel)
        self.radio = QRadioButton(self.title + ("  · recommended" if recommended else ""))
        self.radio.setStyleSheet("font-weight: bold")
        if recommended:
            self.setToolTip("The default: measured best for a classifier from a few labels "
                            "after minutes of pretraining on a CPU (docs/benchmarks-pretext.md)")
        self.radio.toggled.connect(self._show_picked)
        group.addButton(self.radio)
        description = QLabel(getattr(task_cls, "description", ""))
        description.setWordWrap(True)
        self.example = QLabel("…")
        self.example.setMinimumHeight(40)
        self.example.setToolTip("Top: what the network sees; bottom: what it must predict "
                                "(made from your own images)")
        self.problem = QLabel()   # why this folder does not suit the task, when it does not
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet("color: #b35900")
        self.problem.hide()
        text = QVBoxLayout()
        text.setSpacing(2)
        text.addWidget(self.radio)
        text.addWidget(description)
        text.addWidget(self.problem)
        text.addWidget(self.example)
        self.setLayout(text)

    def _show_picked(self, picked: bool) -> None:
        self.setStyleSheet(self.PICKED_STYLE if picked else "")

    def mousePressEvent(self, event) -> None:  # noqa: N802 - clicking anywhere picks the card
        self.radio.setChecked(True)
        super().mousePressEvent(event)

    def set_problem(self, message: str | None) -> None:
        """Say why the task does not suit these images; its picture would only mislead."""
        self.problem.setText(message or "")
        self.problem.setVisible(bool(message))
        if message:
            self.example.hide()

    def set_example(self, image: np.ndarray | None) -> None:
        if self.problem.text():
            return
        if image is None:
            self.example.setText("")
            self.example.hide()
            return
        self.example.setPixmap(array_to_pixmap(image))
        self.example.show()


# ---------------------------------------------------------------------------- the page
class PretrainPage(QWidget):
    title = "Pretrain"

    run_finished = Signal(str, str)  # status, message (for tests and other pages)

    def __init__(self, ctx, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.hub = run_hub(ctx)
        self.tasks = load_tasks()
        self.process: PretrainProcess | None = None
        self.follower: RunFollower | None = None
        self.run_id: int | None = None
        self.run_dir: Path | None = None
        self.last_status: str | None = None
        self.last_message: str = ""
        self.last_details: str = ""
        self._events: list[dict] = []
        self._examples_started = False
        self._example_images: np.ndarray | None = None  # the few images the cards show
        self._examples_dirty: set[str] = set()           # tasks whose options were edited
        self._example_timer = QTimer(self)
        self._example_timer.setSingleShot(True)
        self._example_timer.setInterval(400)  # one re-render after a burst of edits
        self._example_timer.timeout.connect(self._refresh_examples)
        self._build()
        if hasattr(ctx, "project_changed"):
            ctx.project_changed.connect(self.on_project_changed)
        self.on_project_changed()

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        settings = QWidget()
        form_side = QVBoxLayout(settings)

        tasks_box = QGroupBox("Pretext task")
        tasks_layout = QVBoxLayout(tasks_box)
        self.task_group = QButtonGroup(self)
        self.cards: dict[str, TaskCard] = {}
        # the measured default (see suggested_defaults) first, where it is seen without scrolling
        recommended = suggested_defaults(0, "cpu")["task"]
        order = sorted(self.tasks, key=lambda name: name != recommended)
        for name in order:
            card = TaskCard(name, self.tasks[name], self.task_group,
                            recommended=name == recommended)
            self.cards[name] = card
            tasks_layout.addWidget(card)
        if not self.tasks:
            tasks_layout.addWidget(QLabel("No pretext tasks are installed."))
        else:
            next(iter(self.cards.values())).radio.setChecked(True)
        form_side.addWidget(tasks_box)

        settings_box = QGroupBox("Settings")
        form = QFormLayout(settings_box)
        self.backbone = QComboBox()
        self.backbone.addItems(self._backbones())
        self.image_size = QSpinBox()
        self.image_size.setRange(16, 512)
        self.image_size.setSingleStep(16)
        self.image_size.setSuffix(" px")
        budget = QHBoxLayout()
        self.budget_kind = QComboBox()
        self.budget_kind.addItems(["epochs", "minutes"])
        self.budget_value = QDoubleSpinBox()
        self.budget_value.setDecimals(1)
        self.budget_value.setRange(0.1, 10_000)
        self.budget_kind.currentTextChanged.connect(self._budget_kind_changed)
        budget.addWidget(self.budget_value, 1)
        budget.addWidget(self.budget_kind)
        self.batch_size = QSpinBox()
        self.batch_size.setRange(2, 8192)
        self.device = QComboBox()
        for value, text in device_choices():
            self.device.addItem(text, value)
        form.addRow("Backbone", self.backbone)
        form.addRow("Image size", self.image_size)
        form.addRow("Budget", budget)
        form.addRow("Batch size", self.batch_size)
        form.addRow("Device", self.device)
        self.defaults_note = QLabel("")
        self.defaults_note.setWordWrap(True)
        self.defaults_note.setStyleSheet("color: palette(mid)")
        form.addRow(self.defaults_note)
        form_side.addWidget(settings_box)

        self.advanced = self._advanced_section()
        form_side.addWidget(self.advanced)
        # Its own section (not inside Advanced) so its title can say, even when collapsed,
        # that the selected task runs with changed options.
        self.task_options = TaskOptionsForm()
        self.task_options.changed.connect(self._task_options_edited)
        self.task_options_section = _collapsible("Task options", self.task_options)
        form_side.addWidget(self.task_options_section)
        self._options_task: str | None = None   # the task whose editors are shown
        self._option_edits: dict[str, dict] = {}  # task → its edits, while another is shown
        self.task_group.buttonToggled.connect(
            lambda _button, checked: checked and self._show_task_options())
        self._show_task_options()
        form_side.addStretch(1)

        self.settings_scroll = scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(settings)
        scroll.setMinimumWidth(360)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)

        # right side: controls, error banner, plots, run list
        self.start_button = QPushButton("Start")
        self.start_button.setDefault(True)
        self.pause_button = QPushButton("Pause")
        self.resume_button = QPushButton("Resume")
        self.stop_button = QPushButton("Stop")
        self.follow_button = QPushButton("Follow a run folder…")
        self.follow_button.setToolTip("Open a run started from the command line or with "
                                      "torchrun and watch it live")
        self.start_button.clicked.connect(self.start_run)
        self.pause_button.clicked.connect(self.pause_run)
        self.resume_button.clicked.connect(self.resume_run)
        self.stop_button.clicked.connect(self.stop_run)
        self.follow_button.clicked.connect(self._choose_follow_folder)
        self.task_group.buttonToggled.connect(lambda *_: self._name_start_button())
        self._name_start_button()
        buttons = QHBoxLayout()
        for button in (self.start_button, self.pause_button, self.resume_button,
                       self.stop_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.follow_button)
        self.state_label = QLabel("")
        # wrapped and free to shrink, so a long status does not push the splitter over
        self.state_label.setWordWrap(True)
        self.state_label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)

        self.error_banner = QLabel("")
        self.error_banner.setWordWrap(True)
        self.error_banner.setTextInteractionFlags(
            Qt.TextSelectableByMouse | Qt.LinksAccessibleByMouse | Qt.LinksAccessibleByKeyboard)
        self.error_banner.linkActivated.connect(self.show_failure_details)
        self.error_banner.setStyleSheet("background: #fdecea; color: #611a15; padding: 8px;"
                                        "border: 1px solid #f5c6cb; border-radius: 4px")
        self.error_banner.hide()

        self.plots = TrainingPlots()

        self.run_table = QTableWidget(0, 6)
        self.run_table.setHorizontalHeaderLabels(
            ["Run", "Task", "Backbone", "Status", "Steps", "Final figures"])
        self.run_table.horizontalHeaderItem(1).setToolTip(
            "A * marks a run whose task options differ from the defaults")
        self.run_table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.run_table.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.run_table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.run_table.verticalHeader().hide()
        self.run_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.run_table.horizontalHeader().setStretchLastSection(True)
        self.run_table.itemSelectionChanged.connect(self._selection_changed)
        self.run_table.cellDoubleClicked.connect(lambda row, _c: self.show_run(row))
        self.compare_button = QPushButton("Compare selected")
        self.compare_button.setToolTip("Select two runs (Ctrl+click) to overlay their losses")
        self.compare_button.clicked.connect(self.compare_selected)
        self.continue_button = QPushButton("Continue")
        self.continue_button.setToolTip("Continue a stopped or interrupted run from its checkpoint")
        self.continue_button.clicked.connect(lambda: self.continue_run())
        self.show_button = QPushButton("Show")
        self.show_button.clicked.connect(lambda: self.show_run(self._selected_rows()[0])
                                         if self._selected_rows() else None)
        runs_box = QGroupBox("Runs in this project")
        runs_layout = QVBoxLayout(runs_box)
        runs_layout.addWidget(self.run_table)
        run_buttons = QHBoxLayout()
        run_buttons.addWidget(QLabel("Double-click a run to see its curves."))
        run_buttons.addStretch(1)
        run_buttons.addWidget(self.show_button)
        run_buttons.addWidget(self.compare_button)
        run_buttons.addWidget(self.continue_button)
        runs_layout.addLayout(run_buttons)

        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addLayout(buttons)
        right_layout.addWidget(self.state_label)
        right_layout.addWidget(self.error_banner)
        split = QSplitter(Qt.Vertical)
        split.addWidget(self.plots)
        split.addWidget(runs_box)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        right_layout.addWidget(split, 1)

        main = QSplitter(Qt.Horizontal)
        main.addWidget(scroll)
        main.addWidget(right)
        main.setStretchFactor(0, 0)
        main.setStretchFactor(1, 1)
        main.setSizes([400, 880])
        layout = QHBoxLayout(self)
        layout.addWidget(main)
        self._set_running(False)

    def _advanced_section(self) -> QWidget:
        body = QWidget()
        form = QFormLayout(body)
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(5)
        self.lr.setRange(1e-5, 10.0)
        self.lr.setSingleStep(1e-4)
        self.lr.setValue(1e-3)
        self.optimizer = QComboBox()
        self.optimizer.addItems(["adamw", "sgd"])
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.preview_every = QSpinBox()
        self.preview_every.setRange(1, 100_000)
        self.preview_every.setValue(50)
        self.preview_every.setSuffix(" steps")
        self.workers = QSpinBox()
        self.workers.setRange(0, 64)
        self.workers.setSpecialValueText("automatic")
        form.addRow("Learning rate", self.lr)
        form.addRow("Optimizer", self.optimizer)
        form.addRow("Seed", self.seed)
        form.addRow("Preview every", self.preview_every)
        form.addRow("Data workers", self.workers)
        return _collapsible("Advanced", body)

    # ------------------------------------------------------------------ task options
    def _show_task_options(self) -> None:
        """Rebuild the option editors for the selected task.

        Each task keeps its own edits (shared names such as `degrees` of contrastive and
        contrastive_rotation must not carry over), and only the shown task's reach a run.
        """
        if self._options_task is not None:
            self._option_edits[self._options_task] = self.task_options.values()
        task = self.selected_task()
        self._options_task = task
        task_cls = self.tasks.get(task)
        self.task_options.set_options(task_cls.options() if task_cls else (),
                                      self._option_edits.get(task, {}))

    def _task_options_edited(self) -> None:
        if self._options_task is not None:
            self._examples_dirty.add(self._options_task)
            self._example_timer.start()
        changed = len(self.task_options.values())
        _set_title(self.task_options_section,
                   f"Task options ({changed} changed)" if changed else "Task options")

    def task_edits(self, task: str) -> dict:
        """The options `task` runs with, as edited on this page (shown or not)."""
        if task == self._options_task:
            return self.task_options.values()
        return dict(self._option_edits.get(task, {}))

    def task_option_values(self) -> dict:
        """The selected task's options that differ from its defaults."""
        if self._options_task != self.selected_task():
            return {}
        return self.task_options.values()

    def _backbones(self) -> list[str]:
        try:
            from sslstudio.models.backbones import BACKBONES
            return list(BACKBONES)
        except Exception:  # noqa: BLE001
            return list(BACKBONE_CHOICES)

    # ------------------------------------------------------------------ project
    @property
    def store(self):
        return getattr(self.ctx, "store", None)

    def on_project_changed(self, *args) -> None:
        store = self.store
        count = len(store.image_relpaths()) if store is not None else 0
        device = self.device.currentData() or "auto"
        if device == "auto" and self.device.count() > 1:
            device = self.device.itemData(1) or "cpu"
        defaults = suggested_defaults(count, str(device))
        saved = store.get_setting("pretrain_form", None) if store is not None and \
            hasattr(store, "get_setting") else None
        self._apply_values({**defaults, **(saved or {})})
        self.defaults_note.setText(
            f"Defaults chosen for {count} images on {self.device.currentText()}."
            if store is not None else "Open a project on the Data page first.")
        self.start_button.setEnabled(store is not None and self.process is None)
        if store is not None and self.process is None:
            settle_unfinished_runs(store)
        self.refresh_runs()
        if store is not None and self.process is None and self._runs:
            self.show_run(0)  # a reopened project shows its latest run's curves and previews
        if store is not None and count:
            self._examples_started, self._example_images = False, None
            self.compute_examples()

    def _apply_values(self, values: dict) -> None:
        if values.get("backbone") in [self.backbone.itemText(i) for i in range(self.backbone.count())]:
            self.backbone.setCurrentText(values["backbone"])
        self.image_size.setValue(int(values.get("image_size", 64)))
        self.batch_size.setValue(int(values.get("batch_size", 64)))
        kind = values.get("budget_kind", "epochs")
        self.budget_kind.setCurrentText(kind)
        self.budget_value.setValue(float(values.get(kind, values.get("epochs", 10))))
        self.lr.setValue(float(values.get("lr", 1e-3)))
        self._defaults = values
        task = values.get("task")
        if task in self.cards:
            self.cards[task].radio.setChecked(True)
            # the saved options belong to the saved task; edits of other tasks are forgotten
            self._option_edits = {}
            self.task_options.set_values(values.get("task_options") or {})

    def _budget_kind_changed(self, kind: str) -> None:
        defaults = getattr(self, "_defaults", {})
        self.budget_value.setValue(float(defaults.get(kind, 10)))

    def selected_task(self) -> str | None:
        for name, card in self.cards.items():
            if card.radio.isChecked():
                return name
        return None

    def select_task(self, name: str) -> None:
        self.cards[name].radio.setChecked(True)

    # ------------------------------------------------------------------ task examples
    def compute_examples(self) -> None:
        """Render each task's input/target on a few of the user's images, in a worker."""
        if self._examples_started or not self.tasks or self.store is None:
            return
        self._examples_started = True
        store, tasks = self.store, dict(self.tasks)
        options = {name: self.task_edits(name) for name in tasks}

        def work():
            # Import the engine here, off the UI thread: loading torch's libraries holds
            # the GIL for long stretches, and Start would otherwise pay for it at once.
            import sslstudio.train.pretrain  # noqa: F401

            relpaths = store.image_relpaths()
            images = sample_images(store, count=4, size=64, relpaths=relpaths)
            # the engine checks 256 images at the start of a run; 64 small ones say enough here
            checked = sample_images(store, count=64, size=32, relpaths=relpaths)
            # a project of fewer than 64 images had every image sampled: `checked` holds all
            # its readable ones
            n_images = len(checked) if len(relpaths) < 64 else None
            problems = {name: task_problem(task_cls, checked, n_images)
                        for name, task_cls in tasks.items()}
            return images, {name: (example_or_none(task_cls, images, options[name]), options[name])
                            for name, task_cls in tasks.items()}, problems

        self._background(work, on_result=self._show_examples,
                         on_error=lambda *_: self._show_examples(
                             (None, {name: (None, {}) for name in self.cards})))

    def _refresh_examples(self) -> None:
        """Re-render the cards of tasks whose options changed, so the picture shows them."""
        if self._example_images is None:
            return  # the first rendering is still running; it re-checks the options at its end
        images, tasks = self._example_images, dict(self.tasks)
        options = {name: self.task_edits(name) for name in self._examples_dirty if name in tasks}
        self._examples_dirty.clear()
        if options:
            self._background(lambda: (images, {
                name: (example_or_none(tasks[name], images, opts), opts)
                for name, opts in options.items()}), on_result=self._show_examples)

    def _show_examples(self, result: tuple) -> None:
        images, examples, *problems = result
        for name, message in (problems[0] if problems else {}).items():
            if name in self.cards:
                self.cards[name].set_problem(message)
        if images is not None:
            self._example_images = images
        for name, (image, used) in examples.items():
            if name not in self.cards:
                continue
            self.cards[name].set_example(image)
            if used != self.task_edits(name) and images is not None:
                self._examples_dirty.add(name)  # edited while this rendering ran
                self._example_timer.start()

    # ------------------------------------------------------------------ running
    def _background(self, fn, *args, on_result=None, on_error=None):
        return self.ctx.run_in_background(fn, *args, on_result=on_result, on_error=on_error)

    def current_values(self) -> dict:
        kind = self.budget_kind.currentText()
        values = {
            "task": self.selected_task(),
            "task_options": self.task_option_values(),
            "backbone": self.backbone.currentText(),
            "image_size": self.image_size.value(),
            "batch_size": self.batch_size.value(),
            "device": self.device.currentData() or "auto",
            "lr": self.lr.value(),
            "optimizer": self.optimizer.currentText(),
            "seed": self.seed.value(),
            "preview_every": self.preview_every.value(),
            "budget_kind": kind,
        }
        if kind == "epochs":
            values["epochs"] = max(1, int(round(self.budget_value.value())))
            values["minutes"] = None
        else:
            values["minutes"] = self.budget_value.value()
            values["epochs"] = None
        if self.workers.value():
            values["workers"] = self.workers.value()
        return values

    def start_run(self) -> bool:
        """Start a pretraining run from the form; False (with a message) when it cannot."""
        store = self.store
        if store is None:
            self._show_failure("No project is open.", "Open or create a project on the Data page.")
            return False
        if self.process is not None:
            return False
        values = self.current_values()
        if values["task"] is None:
            self._show_failure("No pretext task is available.", "Reinstall SSL Studio.")
            return False
        if hasattr(store, "set_setting"):
            store.set_setting("pretrain_form", values)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = Path(store.runs_dir) / f"{stamp}-{values['task']}"
        suffix = 1
        while run_dir.exists():
            suffix += 1
            run_dir = Path(store.runs_dir) / f"{stamp}-{values['task']}-{suffix}"
        engine_values = {k: v for k, v in values.items() if k != "budget_kind" and v is not None}
        engine_values.update(run_dir=str(run_dir), image_root=str(store.image_root),
                             cache_dir=str(store.cache_dir))
        labels = store.labels()
        if labels:  # lets the engine plot kNN accuracy of the features as they train
            engine_values["labels"] = labels
        try:
            config = build_config(engine_values)
        except Exception as exc:  # noqa: BLE001 - a bad value in the form
            self._show_failure(f"The settings are not valid: {exc}", "Correct them and retry.")
            return False

        run_id = store.add_run("pretrain", run_dir, {**values, **config_to_dict(config)},
                               status="running")
        return self._launch(config, run_id, values)

    def continue_run(self, row: int | None = None) -> bool:
        """Continue a stopped or interrupted run from its checkpoint (same folder, same curves)."""
        rows = self._selected_rows() if row is None else [row]
        store = self.store
        if store is None or self.process is not None or len(rows) != 1 \
                or not (0 <= rows[0] < len(self._runs)):
            return False
        run = self._runs[rows[0]]
        run_dir = Path(run["path"])
        if not _has_checkpoint(run_dir):
            self._show_failure(f"{run_dir.name} has no checkpoint to continue from.",
                               "Start a new run instead.")
            return False
        from sslstudio.train.pretrain import PretrainConfig

        try:
            config = PretrainConfig.for_resume(run_dir)
        except (OSError, ValueError, TypeError) as exc:
            self._show_failure(f"Cannot read the settings of {run_dir.name}: {exc}",
                               "Start a new run instead.")
            return False
        store.update_run(run["id"], status="running")
        return self._launch(config, run["id"], dict(run.get("config") or {}))

    def _launch(self, config, run_id: int, values: dict) -> bool:
        """Start the worker process for ``config`` (a new run, or one to resume)."""
        run_dir = Path(config.out)
        self.run_dir, self.run_id = run_dir, run_id
        self._stop_following()
        self._events = []
        self.last_status, self.last_message, self.last_details = None, "", ""
        self.error_banner.hide()
        self.plots.set_comparison({})
        if config.resume:  # the curves so far, then the new steps
            self._events = [e for e in read_events(run_dir)
                            if e.get("kind") not in ("end", "error")]
            self.plots.set_events(self._events)
        else:
            self.plots.clear()
        # The engine runs in its own process (no contest with the window for the GIL);
        # its events come back through the run folder's metrics.jsonl.
        self.process = PretrainProcess(config, parent=self)
        self.process.event.connect(self._on_event)
        self.process.exited.connect(self._on_process_exited)
        self.hub.run_started.emit(str(run_dir), {**values})
        self.state_label.setText(f"Starting {values.get('task', config.task)} in {run_dir.name}…")
        self._set_running(True)
        try:
            self.process.start()
        except OSError as exc:  # the run folder cannot be written
            self.process.deleteLater()
            self.process = None
            self._finish("failed", f"cannot prepare the run folder {run_dir}: {exc}")
            self._set_running(False)
            return False
        self.refresh_runs()
        return True

    def _on_event(self, event: dict) -> None:
        self._events.append(event)
        self.plots.add_event(event)
        self.hub.event.emit(event)
        kind = event.get("kind")
        if kind == "end":
            self._finish(str(event.get("status", "completed")), str(event.get("message") or ""))
        elif kind == "error":
            self.last_message = str(event.get("message") or "")
            self.last_details = str(event.get("details") or "")
        elif kind == "start" and self.process is not None and not self.process.saw_end:
            where = event.get("device") or ""
            if event.get("amp"):
                where += f", {event['amp']}"
            self.state_label.setText(f"Running {self.run_dir.name if self.run_dir else ''}"
                                     + (f" on {where}" if where else "") + "…")

    def _on_process_exited(self) -> None:
        """The worker process is gone and its last events were delivered (an "end" among them)."""
        process, self.process = self.process, None
        if process is not None:
            process.deleteLater()
        self._set_running(False)

    def shutdown(self) -> None:
        """The window closes: a running run stops with a checkpoint (resumable), not killed."""
        self._stop_following()
        if self.process is not None:
            self.process.shutdown()

    def _finish(self, status: str, message: str) -> None:
        if self.last_status is not None:
            return
        self.last_status, self.last_message = status, message
        self.plots.mark_finished(status, message)
        summary = summarize_events(self._events)
        summary["status"] = status
        if message:
            summary["message"] = message
        if self.store is not None and self.run_id is not None:
            try:
                self.store.update_run(self.run_id, status=status, summary=summary)
            except Exception:  # noqa: BLE001 - a closed project must not crash the UI
                pass
        if status == "failed":
            self._show_failure(message or "The run failed.", failure_advice(message))
        self.state_label.setText(f"Run {status}" + (f": {message}" if message else "") + ".")
        if hasattr(self.ctx, "status"):
            try:
                self.ctx.status(f"Pretraining {status}")
            except Exception:  # noqa: BLE001
                pass
        self.hub.run_finished.emit(status, message)
        self.run_finished.emit(status, message)
        self.refresh_runs()

    def _show_failure(self, message: str, advice: str) -> None:
        link = ' <a href="details">Details…</a>' if self.last_details else ""
        self.error_banner.setText(f"<b>The run failed:</b> {html.escape(message)}<br>"
                                  f"{advice}{link}")
        self.error_banner.show()

    def show_failure_details(self, *_):
        """The failed run's traceback or the worker's last output, in a dialog."""
        from sslstudio.gui.workers import show_error

        return show_error(self, "The run failed", self.last_message or "The run failed.",
                          details=self.last_details or None)

    def pause_run(self) -> None:
        if self.process is not None:
            self.process.pause()
            self.state_label.setText("Paused. Resume continues where it stopped.")
            self.pause_button.setEnabled(False)
            self.resume_button.setEnabled(True)

    def resume_run(self) -> None:
        if self.process is not None:
            self.process.resume()
            self.state_label.setText("Running…")
            self.pause_button.setEnabled(True)
            self.resume_button.setEnabled(False)

    def stop_run(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.state_label.setText("Stopping after the current step (a checkpoint is kept)…")
            self.stop_button.setEnabled(False)
            self.pause_button.setEnabled(False)
            self.resume_button.setEnabled(False)

    def _name_start_button(self) -> None:
        """The button says which task it starts: the cards can be scrolled out of sight."""
        task = self.selected_task()
        self.start_button.setText(f"Start: {self.cards[task].title}" if task else "Start")

    def is_running(self) -> bool:
        return self.process is not None

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running and self.store is not None)
        self.pause_button.setEnabled(running)
        self.resume_button.setEnabled(False)
        self.stop_button.setEnabled(running)

    # ------------------------------------------------------------------ run list
    def refresh_runs(self) -> None:
        store = self.store
        runs = store.runs("pretrain") if store is not None else []
        self._runs = list(reversed(runs))
        self.run_table.setRowCount(len(self._runs))
        for row, run in enumerate(self._runs):
            config, summary = run.get("config") or {}, run.get("summary") or {}
            figures = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                                for k, v in summary.items()
                                if k not in ("status", "steps", "message") and v is not None)
            options = config.get("task_options") or {}
            task = str(config.get("task") or "") + ("*" if options else "")
            cells = [Path(run["path"]).name, task, config.get("backbone", ""),
                     run.get("status", ""), str(summary.get("steps", "")), figures]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(str(text))
                if col == 0:
                    item.setToolTip(json.dumps(config, indent=1, default=str))
                if col == 1 and options:
                    item.setToolTip("Task options changed from the defaults: "
                                    + ", ".join(f"{k}={v}" for k, v in options.items()))
                if col == 5 and summary.get("message"):
                    item.setToolTip(summary["message"])
                self.run_table.setItem(row, col, item)
        self._selection_changed()

    def _selected_rows(self) -> list[int]:
        return sorted({index.row() for index in self.run_table.selectedIndexes()})

    def _selection_changed(self) -> None:
        rows = self._selected_rows()
        self.compare_button.setEnabled(len(rows) == 2)
        self.show_button.setEnabled(len(rows) >= 1)
        self.continue_button.setEnabled(
            len(rows) == 1 and self.process is None and 0 <= rows[0] < len(self._runs)
            and self._runs[rows[0]].get("status") in RESUMABLE)

    def show_run(self, row: int) -> None:
        """Show a past run's curves (and previews on the Inspect page)."""
        if self.process is not None or not (0 <= row < len(self._runs)):
            return
        run = self._runs[row]
        events = read_events(run["path"])
        self.plots.set_comparison({})
        self.plots.set_events(events)
        self.hub.run_started.emit(str(run["path"]), dict(run.get("config") or {}))
        for event in events:
            self.hub.event.emit(event)
        self.state_label.setText(f"Showing {Path(run['path']).name} ({run.get('status')}).")

    def compare_selected(self) -> None:
        rows = self._selected_rows()
        if len(rows) != 2:
            return
        runs = [self._runs[r] for r in rows]
        first = read_events(runs[0]["path"])
        if self.process is None:
            self.plots.set_events(first)
        self.plots.set_comparison({Path(runs[1]["path"]).name: read_events(runs[1]["path"])})
        self.state_label.setText(f"Comparing {Path(runs[0]['path']).name} (solid) with "
                                 f"{Path(runs[1]['path']).name} (dashed).")

    # ------------------------------------------------------------------ following a CLI run
    def _choose_follow_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Follow a run folder")
        if folder:
            self.follow_run(folder)

    def follow_run(self, folder: str | Path) -> bool:
        folder = Path(folder)
        if not (folder / "metrics.jsonl").exists() and not (folder / "config.json").exists():
            self._show_failure(f"{folder} is not a run folder (no metrics.jsonl or config.json).",
                               "Choose the folder given to `sslstudio pretrain --out`.")
            return False
        self._stop_following()
        self.error_banner.hide()
        self.plots.clear()
        self._events = []
        self.follower = RunFollower(folder, parent=self)
        self.follower.event.connect(self._on_followed_event)
        self.follower.finished.connect(lambda status: self._followed_run_ended(folder, status))
        config = {}
        try:
            config = json.loads((folder / "config.json").read_text())
        except (OSError, ValueError):
            pass
        self.hub.run_started.emit(str(folder), config)
        self.state_label.setText(f"Following {folder} …")
        self.follower.start()
        return True

    def _followed_run_ended(self, folder: Path, status: str) -> None:
        self.state_label.setText(f"Followed run {folder.name} ended: {status}.")
        self.plots.mark_finished(status)

    def _on_followed_event(self, event: dict) -> None:
        self._events.append(event)
        self.plots.add_event(event)
        self.hub.event.emit(event)

    def _stop_following(self) -> None:
        if self.follower is not None:
            self.follower.stop()
            self.follower.deleteLater()
            self.follower = None
