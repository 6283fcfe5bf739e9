"""Pretraining: PretrainConfig and run_pretraining(), the loop every client (GUI, CLI, torchrun) uses.

The loop, in order: scan the folder → build/open the decoded uint8 cache →
prefetch batches from its memmap → on the device: float/255 (channels_last on
CUDA) → task.make_batch → model → loss → backward → clip → optimizer step →
schedule. Everything a person or the GUI needs to follow it is an event (see
``events``); everything needed to continue it exactly is in the checkpoint.

Exact resume: the data order is a pure function of (seed, step) (see
``loader.BatchPlan``) and every step reseeds torch / numpy / random from
(seed, step, rank), so a task's random augmentations at step s do not depend on
what ran before; with the model, optimizer and schedule restored, a resumed
run computes the same steps an uninterrupted one would.

Budget by minutes: the first few steps run with an effectively zero learning
rate (a long provisional schedule in warmup) while their speed is measured;
the planned total is then set from that speed and re-estimated three times from
the latest steps (the cosine carries on from where it is at each re-plan), and
the wall-clock deadline ends the run in any case.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
import time
import traceback
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sslstudio.plural import count
from sslstudio.train import distributed
from sslstudio.train.checkpoint import (CHECKPOINT_NAME, CheckpointError, capture_rng_state,
                                        checkpoint_path, has_checkpoint, load_checkpoint,
                                        save_checkpoint)
from sslstudio.train.control import RunControl
from sslstudio.train.device import (DeviceUnavailable, describe, flush_denormals,
                                    mixed_precision, native_bf16, pick_device)
from sslstudio.train.events import EventStream, JsonlWriter, Listener
from sslstudio.train.loader import BatchPlan, PrefetchLoader, fit_batch_size, to_device_float
from sslstudio.train.quality import quality_report
from sslstudio.train.schedule import lr_at, make_optimizer, schedule_anchor, set_lr

OPTIMIZERS = ("adamw", "sgd")
CALIBRATION_STEPS = 5            # steps timed before a minutes budget is turned into steps
PROVISIONAL_TOTAL = 10**7        # keeps the lr ~0 (deep in warmup) while calibrating
DEFAULT_EPOCHS = 10              # the budget when none is given: this many epochs ...
DEFAULT_MINUTES = 10.0           # ... but no longer than this (a CPU with 10,000 images)
CALIBRATION_SHARE = 0.03         # ... or until this share of a minutes budget has passed
MAX_REPORTED_BAD = 20            # warning events for bad files; the rest are counted


class PretrainError(Exception):
    """A run that cannot start or go on, with a message a user can act on."""

    def __init__(self, message: str, details: str = "", *, internal: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.internal = internal  # an unexpected failure (a bug), not a problem with the input


PRECISIONS = ("auto", "float32")


@dataclass
class PretrainConfig:
    folder: str = ""                 # the image folder (read only)
    out: str = ""                    # the run folder
    task: str = "rotation"
    task_options: dict = field(default_factory=dict)
    backbone: str = "small_cnn"
    weights: str | None = None       # optional local file of starting weights
    image_size: int = 64
    epochs: int | None = None        # budget: one of epochs / minutes / steps; none given:
                                     # 10 epochs, capped at 10 minutes (planned from the speed)
    minutes: float | None = None
    steps: int | None = None
    batch_size: int = 64             # per process
    lr: float = 1e-3
    optimizer: str = "adamw"
    weight_decay: float = 0.05
    warmup: float = 0.05             # fraction of the planned steps
    grad_clip: float | None = 1.0
    device: str = "auto"
    precision: str = "auto"          # auto: bf16/fp16 autocast on CUDA, bf16 on CPUs that have
                                     # it natively; "float32": no autocast anywhere
    workers: int | None = None       # decode workers for building the cache
    seed: int = 0
    log_every: int = 0               # steps between step events; 0 = 1 on CPU/MPS, 10 on CUDA/DDP
    preview_every: int = 100         # steps; 0 = never
    checkpoint_every: int = 500      # steps; 0 = only at the end / on stop
    checkpoint_every_s: float = 600.0
    quality_every: int = 200         # steps; 0 = never (a final quality event is still written)
    quality_samples: int = 512
    labels: dict | None = None       # relpath → class, for kNN accuracy
    cache_dir: str | None = None     # default: RUN_DIR/../cache
    resume: bool = False

    # -------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> "PretrainConfig":
        aliases = {"run_dir": "out", "image_root": "folder"}
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {}
        for key, value in data.items():
            key = aliases.get(key, key)
            if key in known:
                kwargs[key] = value
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> "PretrainConfig":
        return cls.from_dict(json.loads(text))

    @classmethod
    def for_resume(cls, run_dir: str | Path) -> "PretrainConfig":
        """The settings RUN_DIR was started with (its config.json), marked to resume.

        Raises ValueError (nothing to resume) or OSError (unreadable) for the caller to say.
        """
        saved = Path(run_dir) / "config.json"
        if not saved.is_file():
            raise ValueError(f"nothing to resume in {run_dir}: no config.json / checkpoint there")
        config = cls.from_json(saved.read_text(encoding="utf-8"))
        config.resume = True
        return config

    def cache_folder(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else Path(self.out).parent / "cache"

    # -------------------------------------------------------------- checks
    def validate(self) -> None:
        """Raise PretrainError for settings that cannot work (before any heavy work)."""
        if not self.folder:
            raise PretrainError("no image folder given")
        if not self.out:
            raise PretrainError("no run folder (--out) given")
        if Path(self.out).exists() and not Path(self.out).is_dir():
            raise PretrainError(f"the run folder {self.out} is a file; choose a folder")
        images = Path(self.folder).expanduser().resolve()
        outside = {"run folder": f"--out {images.parent / 'runs' / images.name}",
                   "cache folder": f"--cache-dir {images.parent / (images.name + '-cache')}"}
        for what, path in (("run folder", Path(self.out)), ("cache folder", self.cache_folder())):
            # The image folder is only read: a run's preview PNGs inside it would be scanned
            # as training images the next time.
            if path.expanduser().resolve().is_relative_to(images):
                raise PretrainError(f"the {what} {path} is inside the image folder {self.folder}; "
                                    f"SSL Studio never writes there: choose one outside it "
                                    f"(e.g. {outside[what]})")
        budgets = [b for b in ("epochs", "minutes", "steps") if getattr(self, b) is not None]
        if len(budgets) > 1:
            raise PretrainError(f"give one budget, not {' and '.join(budgets)}")
        for name in ("epochs", "minutes", "steps", "batch_size", "image_size", "lr"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise PretrainError(f"{name.replace('_', ' ')} must be positive (got {value})")
        if self.optimizer.lower() not in OPTIMIZERS:
            raise PretrainError(f"unknown optimizer {self.optimizer!r}; choose adamw or sgd")
        if not 0 <= self.warmup < 1:
            raise PretrainError("warmup is a fraction of the run, between 0 and 1")
        if self.image_size < 8:
            raise PretrainError("image size must be at least 8 pixels")
        if self.precision not in PRECISIONS:
            raise PretrainError(f"unknown precision {self.precision!r}; choose "
                                f"{' or '.join(PRECISIONS)}")
        from sslstudio.pretext import TASKS, create_task

        if self.task not in TASKS:
            raise PretrainError(f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        try:  # a typo in an option fails now, not after the whole folder has been decoded
            create_task(self.task, **(self.task_options or {}))
        except (TypeError, ValueError) as exc:
            raise PretrainError(f"bad options for task {self.task}: {exc}") from exc


# ----------------------------------------------------------------------------- helpers
def seed_step(seed: int, step: int, rank: int = 0) -> None:
    """Reseed every global RNG from (seed, step, rank): step s draws the same numbers on resume."""
    value = int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0])
    torch.manual_seed(value)
    np.random.seed(value)
    random.seed(value)


def memory_mb(device: torch.device) -> float | None:
    """Peak allocated GPU memory on CUDA, else the process's resident memory."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
        import os
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, AttributeError, IndexError):
        pass
    try:
        import resource
        import sys
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024
    except (ImportError, OSError):
        return None


def is_out_of_memory(exc: BaseException) -> bool:
    oom_type = getattr(torch.cuda, "OutOfMemoryError", None)
    text = str(exc).lower()
    return (oom_type is not None and isinstance(exc, oom_type)) or "out of memory" in text \
        or "can't allocate memory" in text  # the CPU allocator's wording


def state_digest(module: torch.nn.Module) -> str:
    """SHA-256 of every parameter and buffer (to compare replicas across DDP ranks)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _detach(value):
    """Tensors (in tuples, lists, dicts) cut from the autograd graph, without a copy."""
    if torch.is_tensor(value):
        return value.detach()
    if isinstance(value, (list, tuple)):
        return type(value)(_detach(v) for v in value)
    if isinstance(value, dict):
        return {k: _detach(v) for k, v in value.items()}
    return value


def _detach_float(value):
    if torch.is_tensor(value):
        value = value.detach()
        return value.float() if value.is_floating_point() else value
    if isinstance(value, (list, tuple)):
        return type(value)(_detach_float(v) for v in value)
    if isinstance(value, dict):
        return {k: _detach_float(v) for k, v in value.items()}
    return value


def _slug(text: str) -> str:
    keep = "".join(c.lower() if c.isalnum() else "-" for c in text)
    return "-".join(part for part in keep.split("-") if part)[:40] or "preview"


def looks_grayscale(images: np.ndarray, tolerance: int = 4) -> bool:
    """True when (nearly) every pixel of the sample has R = G = B."""
    if images.size == 0:
        return False
    x = images.astype(np.int16)
    spread = np.maximum(np.abs(x[..., 0] - x[..., 1]), np.abs(x[..., 1] - x[..., 2]))
    return float((spread > tolerance).mean()) < 0.01


def too_few_images(task, n_images: int, folder="this folder", processes: int = 1) -> str | None:
    """Why ``task`` cannot learn from only ``n_images`` (a contrastive batch of one image
    has nothing to tell it apart from), or None."""
    needed = getattr(task, "min_batch", 1) * processes
    if n_images >= needed:
        return None
    per = f" ({needed // processes} per process)" if processes > 1 else ""
    return (f"the {task.name} task learns by telling images apart and needs at least "
            f"{needed} readable images{per}; {folder} has {count(n_images, 'image')}: add "
            f"images or choose another task")


def task_image_problem(task, images: np.ndarray, folder="this folder") -> str | None:
    """Why ``task`` cannot learn from these sample images (N×H×W×3 uint8), or None: the
    check a run makes before it starts, and the Pretrain page's cards before any run."""
    if not getattr(task, "requires_color", False):
        return None
    check = getattr(task, "check_images", None)
    if callable(check):
        message = check(images)
        return str(message) if message else None
    if looks_grayscale(images):
        return (f"the {task.name} task needs colour images, but the images in {folder} are "
                f"grayscale; choose another task")
    return None


# ----------------------------------------------------------------------------- the run
class _Run:
    """One pretraining run; ``run_pretraining`` wraps it with error reporting."""

    def __init__(self, config: PretrainConfig, stream: EventStream, control: RunControl,
                 dist_info: distributed.DistInfo, device: torch.device) -> None:
        self.config = config
        self.stream = stream
        self.control = control
        self.dist = dist_info
        self.device = device
        self.run_dir = Path(config.out)
        self.ckpt_path = checkpoint_path(self.run_dir)
        self.step = 0
        self.total_steps = 1
        self.lr_anchor: tuple[int, float] | None = None   # where a re-plan took over
        self.last_lr = 0.0
        self.cuda = device.type == "cuda"
        self.started = time.monotonic()
        self.budget_seconds_used = 0.0   # from earlier sessions of a resumed run
        self.last_quality: dict | None = None
        self.last_log: dict = {}
        self.speed_ema: float | None = None  # seconds per step, for the ETA
        self.deadline: float | None = None
        self.last_preview_step = -1
        self.end_batch = None                        # the loop's last batch, for finish_touches
        self.end_quality_rows: tuple = (None, None)
        self.max_total_steps: int | None = None
        # a minutes budget, given or the default one (DEFAULT_EPOCHS capped at DEFAULT_MINUTES)
        self.budget_minutes = config.minutes or (
            None if (config.steps or config.epochs) else DEFAULT_MINUTES)

    def emit(self, kind: str, **fields: Any) -> None:
        self.stream.emit(kind, self.step, **fields)

    # ------------------------------------------------------------------ data
    def prepare_data(self):
        from sslstudio.data.cache import DecodedCache
        from sslstudio.data.scan import scan_folder

        config = self.config
        root = Path(config.folder)
        if not root.is_dir():
            raise PretrainError(f"image folder not found: {root}")
        cache_dir = config.cache_folder()
        scan_bad: list = []
        if self.dist.is_main:
            scan = scan_folder(root)
            scan_bad = list(scan.bad)
            if not scan.images:
                raise PretrainError(f"no images found in {root} (looked for common image "
                                    "extensions in the folder and its subfolders)")
            last_emit = [0.0]

            def progress(done: int, total: int) -> None:
                now = time.monotonic()
                if now - last_emit[0] >= 0.25 or done >= total:
                    last_emit[0] = now
                    self.emit("cache", done=int(done), total=int(total))

            cache = DecodedCache.build(root, scan.images, config.image_size, cache_dir,
                                       workers=config.workers, progress=progress,
                                       cancel=self.control.is_stopped)
            distributed.barrier()
        else:
            distributed.barrier()
            cache = DecodedCache.open(cache_dir, config.image_size)
        bad = {b.relpath: b.reason for b in scan_bad}
        for b in getattr(cache, "bad", []) or []:
            bad.setdefault(b.relpath, b.reason)
        if len(cache) == 0:
            raise PretrainError(f"none of the images in {root} could be decoded"
                                + (f" (e.g. {next(iter(bad))}: {bad[next(iter(bad))]})" if bad else ""))
        return cache, bad

    def check_task_fits(self, task, cache) -> None:
        message = too_few_images(task, len(cache), self.config.folder, self.dist.world_size)
        if message:
            raise PretrainError(message)
        if not getattr(task, "requires_color", False):
            return
        rng = np.random.default_rng(self.config.seed)
        rows = np.sort(rng.choice(len(cache), size=min(256, len(cache)), replace=False))
        message = task_image_problem(task, np.asarray(cache.images[rows]), self.config.folder)
        if message:
            raise PretrainError(message)

    # ------------------------------------------------------------------ model
    def build(self, cache):
        from sslstudio.models.backbones import create_backbone
        from sslstudio.pretext import create_task
        from sslstudio.pretext.base import PretextModel

        config = self.config
        torch.manual_seed(config.seed)  # identical initial weights on every rank and rerun
        task = create_task(config.task, **(config.task_options or {}))  # validate() checked them
        self.check_task_fits(task, cache)
        self.task_config = task.config() if callable(getattr(task, "config", None)) else {}
        kwargs = {"image_size": config.image_size}
        if config.weights:
            kwargs["weights"] = config.weights
        try:
            backbone = create_backbone(config.backbone, **kwargs)
        except ValueError as exc:  # unknown name, unreadable or unfitting weights file
            raise PretrainError(str(exc)) from exc
        head = task.build_head(backbone)
        model = PretextModel(task, backbone, head).to(self.device)
        if self.cuda:
            model = model.to(memory_format=torch.channels_last)
        return task, model

    # ------------------------------------------------------------------ bookkeeping
    def checkpoint_state(self, model, optimizer, scaler) -> dict:
        return {
            "format": 1,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": {"total_steps": int(self.total_steps), "warmup": float(self.config.warmup),
                          "base_lr": float(self.config.lr),
                          "anchor": list(self.lr_anchor) if self.lr_anchor else None,
                          "budget_seconds_used": float(self.budget_seconds_used + self.elapsed())},
            "scaler": scaler.state_dict() if scaler is not None else {},
            "step": int(self.step),
            "epoch": int(self.plan.epoch_of(self.step)),
            "data": {"seed": int(self.config.seed), "batch_size": int(self.plan.batch_size),
                     "world_size": int(self.plan.world_size),
                     "num_images": int(self.plan.num_images),
                     "epoch_position": int(self.step % self.plan.steps_per_epoch)},
            "rng": capture_rng_state(),
            "config": self.config.to_json(),
        }

    def elapsed(self) -> float:
        return time.monotonic() - self.started - self.paused_seconds

    def save(self, model, optimizer, scaler, task) -> None:
        """Checkpoint + backbone files (rank 0 only)."""
        if not self.dist.is_main:
            return
        save_checkpoint(self.checkpoint_state(model, optimizer, scaler), self.ckpt_path)
        self.save_backbone(model, task)
        self.emit("checkpoint", path="checkpoints/" + CHECKPOINT_NAME,
                  backbone="backbone.safetensors")
        self.last_checkpoint_time = time.monotonic()

    def save_backbone(self, model, task) -> None:
        from sslstudio.models.io import save_backbone

        info = {"name": self.config.backbone, "image_size": self.config.image_size,
                "pretext_task": self.config.task, "pretrain_steps": int(self.step),
                "run_dir": str(self.run_dir)}
        if self.last_quality:
            info["quality"] = {k: v for k, v in self.last_quality.items()
                               if isinstance(v, (int, float)) and not k.startswith("_")}
        save_backbone(self.run_dir / "backbone", model.backbone, info)

    def quality_rows(self, cache, labels: dict | None) -> tuple[np.ndarray, list]:
        """A fixed sample: labelled images first, then a seeded random fill, up to the limit."""
        # Nothing here is per cache image (a 100,000-image cache costs no Python objects):
        # labelled rows are looked up one by one, the random fill is a numpy array.
        limit = min(self.config.quality_samples, len(cache))
        labelled = []
        in_order = bool(labels) and _is_sorted(cache.relpaths)
        for rp, cls in sorted((labels or {}).items()):
            row = _row_of(cache, rp, in_order) if cls is not None else None
            if row is not None:
                labelled.append((row, cls))
                if len(labelled) == limit:
                    break
        chosen = np.asarray([r for r, _ in labelled], dtype=np.int64)
        rng = np.random.default_rng([self.config.seed, 7])
        rest = rng.permutation(len(cache))
        if len(chosen):
            rest = rest[~np.isin(rest, chosen)]
        rows = np.concatenate([chosen, rest[:limit - len(chosen)]]).astype(np.int64)
        tags = [c for _, c in labelled] + [None] * (len(rows) - len(labelled))
        return rows, tags

    @torch.no_grad()
    def measure_quality(self, backbone, cache, rows, tags) -> dict:
        was_training = backbone.training
        backbone.eval()
        chunks = []
        try:
            for start in range(0, len(rows), 128):
                part = rows[start:start + 128]
                order = np.argsort(part)  # sorted reads from the memmap, original order kept
                batch = torch.from_numpy(np.ascontiguousarray(cache.images[part[order]]))
                x = to_device_float(batch, self.device, channels_last=self.cuda)
                with self.autocast():
                    feats = backbone(x).float()
                inverse = np.empty_like(order)
                inverse[order] = np.arange(len(order))
                chunks.append(feats.cpu().numpy()[inverse])
        finally:
            backbone.train(was_training)
        embeddings = np.concatenate(chunks)
        has_labels = sum(t is not None for t in tags) > 0
        return quality_report(embeddings, tags if has_labels else None)

    def write_previews(self, task, inputs, outputs, targets) -> None:
        with torch.no_grad():
            previews = task.preview(_detach_float(inputs), _detach_float(outputs),
                                    _detach_float(targets))
        from PIL import Image

        folder = self.run_dir / "previews"
        folder.mkdir(parents=True, exist_ok=True)
        items = []
        for index, preview in enumerate(previews):
            name = f"step{self.step:07d}-{index}-{_slug(preview.title)}.png"
            image = np.asarray(preview.image)
            if image.dtype != np.uint8:
                image = np.clip(image, 0, 255).astype(np.uint8)
            Image.fromarray(image).save(folder / name)
            items.append({"title": preview.title, "path": f"previews/{name}"})
        if items:
            self.emit("preview", images=items)
        self.last_preview_step = self.step

    def autocast(self):
        if self.amp_dtype is not None:
            return torch.autocast(self.device.type, dtype=self.amp_dtype)
        return nullcontext()

    # ------------------------------------------------------------------ main
    def run(self) -> dict:
        config = self.config
        flush_denormals()
        self.paused_seconds = 0.0
        self.last_checkpoint_time = time.monotonic()
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        resume_state = None
        if config.resume:
            try:
                resume_state, source, warning = load_checkpoint(self.ckpt_path)
            except CheckpointError as exc:
                raise PretrainError(f"cannot resume: {exc}") from exc
            if warning:
                self.emit("warning", message=warning)

        cache, bad = self.prepare_data()
        task, model = self.build(cache)
        world = self.dist.world_size
        batch_size = fit_batch_size(config.batch_size, len(cache), world)
        if resume_state is not None:
            batch_size = int(resume_state["data"]["batch_size"])
        self.plan = BatchPlan(len(cache), batch_size, config.seed, world, self.dist.rank)
        if config.steps:
            self.total_steps = int(config.steps)
        elif self.budget_minutes:
            self.total_steps = PROVISIONAL_TOTAL
        else:
            self.total_steps = int(config.epochs) * self.plan.steps_per_epoch
        if not (config.steps or config.minutes or config.epochs):  # the default budget
            self.max_total_steps = DEFAULT_EPOCHS * self.plan.steps_per_epoch

        optimizer = make_optimizer(config.optimizer, model, config.lr, config.weight_decay)
        self.amp_dtype = None
        scaler = None
        mixed = config.precision == "auto"
        if self.cuda:
            torch.backends.cudnn.benchmark = True
        if self.cuda and mixed:
            # bf16 where the GPU has it natively; float16 + GradScaler elsewhere (T4, V100)
            self.amp_dtype = torch.bfloat16 if native_bf16(self.device) else torch.float16
            if self.amp_dtype == torch.float16:
                scaler = torch.amp.GradScaler("cuda")
        elif mixed:
            # bf16 on CPUs that have it natively: the convolutions run about twice as fast;
            # the losses stay float32 (see train_step)
            self.amp_dtype = mixed_precision(self.device)

        if resume_state is not None:
            model.load_state_dict(resume_state["model"])
            optimizer.load_state_dict(resume_state["optimizer"])
            if scaler is not None and resume_state.get("scaler"):
                scaler.load_state_dict(resume_state["scaler"])
            self.step = int(resume_state["step"])
            self.total_steps = int(resume_state["scheduler"]["total_steps"])
            anchor = resume_state["scheduler"].get("anchor")
            self.lr_anchor = (int(anchor[0]), float(anchor[1])) if anchor else None
            self.budget_seconds_used = float(resume_state["scheduler"].get("budget_seconds_used", 0))

        if self.dist.is_main:
            (self.run_dir / "config.json").write_text(config.to_json(), encoding="utf-8")
        train_model = model
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            train_model = DistributedDataParallel(
                model, device_ids=[self.device.index] if self.cuda else None)

        bad_list = [{"relpath": rp, "reason": reason} for rp, reason in sorted(bad.items())]
        shown_config = {**config.to_dict(), "labels": len(config.labels or {})}
        self.emit("start", config=shown_config, task=config.task, backbone=config.backbone,
                  task_options=self.task_config, dataset_size=len(cache),
                  skipped=len(bad_list), bad_files=bad_list[:100],
                  device=describe(self.device), world_size=world, batch_size=batch_size,
                  global_batch=self.plan.global_batch, steps_per_epoch=self.plan.steps_per_epoch,
                  total_steps=None if self.budget_minutes and resume_state is None
                  else self.total_steps,
                  resumed_from=int(self.step) if resume_state is not None else None,
                  amp=str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else None)
        for item in bad_list[:MAX_REPORTED_BAD]:
            self.emit("warning", message=f"skipped {item['relpath']}: {item['reason']}",
                      file=item["relpath"], reason=item["reason"])
        if len(bad_list) > MAX_REPORTED_BAD:
            self.emit("warning", message=f"{len(bad_list) - MAX_REPORTED_BAD} more unreadable "
                                         "files were skipped")
        if batch_size < config.batch_size:
            self.emit("warning", message=f"batch size lowered to {batch_size}: the dataset has "
                                         f"only {count(len(cache), 'image')}")

        status, message = self.loop(task, model, train_model, optimizer, scaler, cache)
        distributed.sync_buffers(model)

        if self.dist.is_main:
            if status == "stopped":
                # someone waits for this stop (perhaps a closing app): keep the training first
                self.save(model, optimizer, scaler, task)
                if self.finish_touches(task, model, cache):
                    self.save_backbone(model, task)  # its info carries the final quality
            else:
                self.finish_touches(task, model, cache)
                self.save(model, optimizer, scaler, task)
        if _rank_digest_requested():
            (self.run_dir / f"rank{self.dist.rank}.digest").write_text(state_digest(model))
        summary = {"status": status, "message": message, "steps": int(self.step),
                   "total_steps": int(self.total_steps), "run_dir": str(self.run_dir),
                   "seconds": round(self.elapsed(), 3), "loss": self.last_log.get("loss"),
                   "metrics": self.last_log.get("metrics", {}),
                   "images_per_s": self.last_log.get("images_per_s"),
                   "quality": self.last_quality, "skipped": len(bad_list)}
        self.emit("end", status=status, message=message, summary=summary)
        distributed.barrier()  # no rank leaves the process group while another still works
        return summary

    def loop(self, task, model, train_model, optimizer, scaler, cache) -> tuple[str, str]:
        config, dist_on = self.config, self.dist.enabled
        log_every = config.log_every or (10 if (self.cuda or dist_on) else 1)
        minutes = self.budget_minutes
        self.deadline = minutes * 60 - self.budget_seconds_used if minutes else None
        budget = _MinutesPlanner(self) if minutes and \
            self.total_steps == PROVISIONAL_TOTAL else None
        quality_rows = quality_tags = None
        if self.dist.is_main:  # a final quality event is always written
            quality_rows, quality_tags = self.quality_rows(cache, config.labels)
        window = _LogWindow()
        last_batch = None
        status, message = "completed", ""
        self.started, self.paused_seconds = time.monotonic(), 0.0  # the budget counts training only
        loader = PrefetchLoader(cache.images, self.plan, self.step, pin_memory=self.cuda)
        try:
            while self.step < self.total_steps:
                if not dist_on:  # DDP ranks act on control only at the synchronised log points
                    window.paused += self.wait_if_paused()
                    if self.control.is_stopped():
                        status, message = "stopped", f"stopped by the user at step {self.step}"
                        break
                    if self.out_of_time():
                        message = f"time budget of {minutes:g} min reached"
                        break
                got_step, batch = loader.next()
                assert got_step == self.step, (got_step, self.step)
                inputs, outputs, targets, loss, metrics = self.train_step(
                    task, model, train_model, optimizer, scaler, batch)
                self.step += 1
                window.add(loss, metrics)
                if self.dist.is_main and config.preview_every:
                    if self.step % config.preview_every == 0:
                        self.write_previews(task, inputs, outputs, targets)
                    else:  # kept (no copy) for the preview at the end of the run
                        last_batch = (inputs, _detach(outputs), targets)
                del inputs, targets, outputs, loss
                if budget is not None and budget.after_step():
                    budget = None
                if self.step % log_every == 0 or self.step >= self.total_steps:
                    stop, out_of_time = self.log_point(
                        window, planning=budget is not None and budget.recheck_at is None)
                    if stop:
                        status, message = "stopped", f"stopped by the user at step {self.step}"
                        break
                    if out_of_time:
                        message = f"time budget of {minutes:g} min reached"
                        break
                if self.dist.is_main and config.quality_every and \
                        self.step % config.quality_every == 0:
                    self.run_quality(model, cache, quality_rows, quality_tags)
                if (config.checkpoint_every and self.step % config.checkpoint_every == 0
                        and self.step < self.total_steps) or (
                        config.checkpoint_every_s and self.dist.is_main and
                        time.monotonic() - self.last_checkpoint_time >= config.checkpoint_every_s):
                    self.save(model, optimizer, scaler, task)
        finally:
            loader.close()
        if self.total_steps == PROVISIONAL_TOTAL:  # the budget ran out before the plan was set
            self.total_steps = self.step
        self.end_batch, self.end_quality_rows = last_batch, (quality_rows, quality_tags)
        return status, message

    def finish_touches(self, task, model, cache) -> bool:
        """The previews and quality of the last step, where the loop did not just write them
        (a short or stopped run still shows what the model does at its end); True when a new
        quality was measured."""
        last_batch, self.end_batch = self.end_batch, None
        if last_batch is not None and self.last_preview_step != self.step:
            self.write_previews(task, *last_batch)
        del last_batch
        rows, tags = self.end_quality_rows
        if rows is None or len(rows) < 2 or (
                self.last_quality is not None and self.last_quality.get("_step") == self.step):
            return False
        self.run_quality(model, cache, rows, tags)
        return True

    def wait_if_paused(self) -> float:
        """Hold here while paused; returns the seconds spent (kept out of speed and budget)."""
        if not self.control.paused:
            return 0.0
        t0 = time.monotonic()
        self.control.wait_while_paused()
        waited = time.monotonic() - t0
        self.paused_seconds += waited
        return waited

    def out_of_time(self) -> bool:
        return self.deadline is not None and self.elapsed() >= self.deadline

    def train_step(self, task, model, train_model, optimizer, scaler, batch):
        """One optimizer step on one uint8 batch; returns what previews and logging need."""
        config = self.config
        seed_step(config.seed, self.step, self.dist.rank)
        images = to_device_float(batch, self.device, channels_last=self.cuda)
        inputs, targets = task.make_batch(images)
        with self.autocast():
            outputs = train_model(inputs)
        # The loss runs outside autocast: NT-Xent similarities, log-softmax over colour bins
        # and the masked means need float32 (bf16 keeps ~3 digits: cosines of 0.99 and 0.995
        # would be the same number). Every task casts its outputs to float itself.
        loss, metrics = task.loss(outputs, targets)
        # On CPU/MPS the value is free to read: refuse a NaN before it reaches the weights.
        # On CUDA (and across DDP ranks) the check waits for the next log point, and metrics
        # may be 0-dim tensors summed on the device, so no step waits for the GPU.
        if not self.cuda and not self.dist.enabled and not math.isfinite(loss.item()):
            raise PretrainError(self.nan_message(self.step + 1))
        self.last_lr = lr_at(self.step, self.total_steps, config.lr, config.warmup,
                             anchor=self.lr_anchor)
        set_lr(optimizer, self.last_lr)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            if config.grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if config.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
        return inputs, outputs, targets, loss.detach(), metrics

    def log_point(self, window: "_LogWindow", planning: bool) -> tuple[bool, bool]:
        """Sync the window's losses, check them, emit a step event; (stop?, out of time?).

        Under DDP the sums, the NaN flag, the stop request and the deadline are
        all-reduced together, so every rank takes the same decision at the same step.
        """
        values = torch.stack([value.float() for value in window.losses]).cpu()
        finite = torch.isfinite(values)
        stats = torch.tensor([float(values[finite].sum()) if finite.any() else 0.0,
                              float(finite.sum()), float((~finite).any()),
                              float(self.control.is_stopped()), float(self.out_of_time())]
                             + window.metric_values(), dtype=torch.float64)
        distributed.all_reduce(stats, op="sum")
        if stats[2] > 0:
            local_first = int((~finite).nonzero()[0]) if (~finite).any() else 0
            raise PretrainError(self.nan_message(self.step - len(values) + 1 + local_first))
        seconds, steps = window.close()
        self.speed_ema = seconds / steps if self.speed_ema is None else \
            0.7 * self.speed_ema + 0.3 * seconds / steps
        eta = max(0, self.total_steps - self.step) * self.speed_ema
        if self.deadline is not None:
            eta = min(eta, max(0.0, self.deadline - self.elapsed()))
        shares = len(values) * self.dist.world_size
        self.last_log = {
            "loss": float(stats[0]) / max(1.0, float(stats[1])),
            "metrics": {name: float(stats[5 + i]) / shares
                        for i, name in enumerate(window.metric_sums)},
            "lr": self.last_lr,   # the rate the last step used (a re-plan since changes none)
            "images_per_s": self.plan.global_batch * steps / seconds,
            "eta_s": eta, "epoch": self.plan.epoch_of(self.step - 1) + 1,
            "memory_mb": memory_mb(self.device),
            "total_steps": None if planning else self.total_steps}
        self.emit("step", **self.last_log)
        window.reset()
        return bool(stats[3] > 0), bool(stats[4] > 0)

    def run_quality(self, model, cache, rows, tags) -> None:
        report = self.measure_quality(model.backbone, cache, rows, tags)
        self.last_quality = {**report, "_step": self.step}
        self.emit("quality", **report)

    def plan_minutes(self, per_step: float, deadline: float) -> tuple[int, int | None]:
        """Planned total steps for the time left (same on every rank: rank 0's figure wins).

        A re-plan (not the first plan) also anchors the schedule here, so the learning
        rate carries on from where it is instead of jumping to the new plan's curve."""
        remaining = max(0.0, deadline - self.elapsed())
        total = self.step + max(1, int(remaining / max(per_step, 1e-6)))
        if self.max_total_steps:  # the default budget: the epochs, unless time runs out first
            total = max(self.step + 1, min(total, self.max_total_steps))
        recal = self.step + max(1, (total - self.step) // 4)
        total, recal = distributed.broadcast_object((total, recal))
        if self.total_steps != PROVISIONAL_TOTAL and total != self.total_steps:
            self.lr_anchor = schedule_anchor(self.step, self.total_steps, self.config.warmup,
                                             self.lr_anchor)
        return int(total), int(recal)

    def nan_message(self, step: int) -> str:
        return (f"loss became NaN or infinite at step {step}; try a lower learning rate "
                f"(now {self.config.lr:g})")


class _LogWindow:
    """Losses and metrics since the last step event, and the time they took (pauses excluded)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.losses: list[torch.Tensor] = []
        self.metric_sums: dict[str, float] = {}
        self.start = time.monotonic()
        self.paused = 0.0

    def add(self, loss: torch.Tensor, metrics: dict | None) -> None:
        self.losses.append(loss)
        for name, value in (metrics or {}).items():
            if torch.is_tensor(value):  # stays on the device until the log point
                value = value.detach().float().reshape(())
            self.metric_sums[name] = self.metric_sums.get(name, 0.0) + value

    def metric_values(self) -> list[float]:
        """The metric sums as floats (one device sync for all tensors together)."""
        sums = list(self.metric_sums.values())
        tensors = [i for i, v in enumerate(sums) if torch.is_tensor(v)]
        if tensors:
            values = torch.stack([sums[i] for i in tensors]).cpu().tolist()
            for i, value in zip(tensors, values):
                sums[i] = value
        return [float(v) for v in sums]

    def close(self) -> tuple[float, int]:
        seconds = max(1e-9, time.monotonic() - self.start - self.paused)
        return seconds, max(1, len(self.losses))


class _MinutesPlanner:
    """Turns a minutes budget into a planned number of steps from the measured speed.

    The first step is not timed (allocations, cudnn autotuning); the next
    CALIBRATION_STEPS - 1 are (fewer when they take over CALIBRATION_SHARE of the
    budget), then the plan is set and re-estimated REPLANS times, each at a quarter of
    the steps left, from the steps since the previous plan alone: the speed changes as
    a run warms up and as other work on the machine starts or stops, and an average
    from the start would plan the cosine schedule to end early (or be cut off by the
    deadline before it ends). The deadline stops the run anyway.
    """

    REPLANS = 3

    def __init__(self, run: "_Run") -> None:
        self.run = run
        self.first_step = run.step
        self.t0: float | None = None
        self.recheck_at: int | None = None
        self.planned = (0.0, 0)   # when the plan was last set: (time, step)
        self.replans = 0

    def after_step(self) -> bool:
        """Call after every step; True once planning is over."""
        run = self.run
        done = run.step - self.first_step
        now = time.monotonic()
        if done == 1:
            self.t0 = now
        elif self.recheck_at is None and done >= 2 and (
                done == CALIBRATION_STEPS or (not run.dist.enabled and  # ranks: same step
                                              now - self.t0 >= CALIBRATION_SHARE * run.deadline)):
            # slow steps (a big model on a CPU) are planned sooner: the calibration steps run
            # at a learning rate of ~0, so they must stay a small share of the budget
            per_step = (now - self.t0) / (done - 1)
            run.total_steps, self.recheck_at = run.plan_minutes(per_step, run.deadline)
            self.recheck_at = max(self.recheck_at, run.step + 1)
            self.planned = (now, run.step)
        elif self.recheck_at is not None and run.step >= self.recheck_at:
            if run.step >= run.total_steps:
                # the plan is done: its cosine is at its end, so more steps now would train
                # at the final learning rate (zero) and only use up the user's time
                return True
            since, step = self.planned
            per_step = (now - since) / max(1, run.step - step)
            run.total_steps, self.recheck_at = run.plan_minutes(per_step, run.deadline)
            self.planned = (now, run.step)
            self.replans += 1
            return self.replans >= self.REPLANS
        return False


def _row_of(cache, relpath: str, in_order: bool) -> int | None:
    """The cache row of ``relpath`` (None if absent): a binary search when the rows are in
    relpath order (as the cache writes them), else the cache's own index."""
    import bisect

    if in_order:
        relpaths = cache.relpaths
        i = bisect.bisect_left(relpaths, relpath)
        return i if i < len(relpaths) and relpaths[i] == relpath else None
    try:
        return int(cache.index_of(relpath))
    except (KeyError, ValueError):
        return None


def _is_sorted(items) -> bool:
    from itertools import pairwise

    return all(a <= b for a, b in pairwise(items))


def _rank_digest_requested() -> bool:
    import os

    return os.environ.get("SSLSTUDIO_RANK_DIGEST", "") not in ("", "0")


def run_pretraining(config: PretrainConfig, listeners: list[Listener] | tuple = (),
                    control: RunControl | None = None) -> dict:
    """Run (or resume, with ``config.resume``) a pretraining run; returns a summary dict.

    Events go to ``listeners`` and, on rank 0, to RUN_DIR/metrics.jsonl. A run
    that fails emits "error" (message + details) and "end" (status "failed")
    and raises PretrainError with the same readable message.
    """
    if isinstance(config, dict):
        config = PretrainConfig.from_dict(config)
    control = control or RunControl()
    dist_info = distributed.from_env()
    stream = EventStream(listeners if dist_info.is_main else ())
    writer = None
    run: _Run | None = None
    try:
        config.validate()
        run_dir = Path(config.out)
        if not config.resume and has_checkpoint(checkpoint_path(run_dir)):
            raise PretrainError(f"{run_dir} already holds a run; resume it (--resume) or choose "
                                "another run folder")
        if dist_info.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            writer = JsonlWriter(run_dir / "metrics.jsonl", append=config.resume)
            stream.listeners.append(writer)
        try:
            device = pick_device(config.device, dist_info.local_rank if dist_info.enabled else None)
        except DeviceUnavailable as exc:
            raise PretrainError(str(exc)) from exc
        distributed.init(dist_info, device)
        run = _Run(config, stream, control, dist_info, device)
        return run.run()
    except BaseException as exc:
        step = run.step if run is not None else 0
        if type(exc).__name__ == "Cancelled":  # the user stopped while the cache was built
            stream.emit("end", step, status="stopped", message="stopped while decoding the images")
            return {"status": "stopped", "message": "stopped while decoding the images",
                    "steps": step, "run_dir": str(config.out)}
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            stream.emit("end", step, status="failed", message="interrupted")
            raise
        if isinstance(exc, PretrainError):
            error = exc
        elif is_out_of_memory(exc):
            error = PretrainError(
                f"the device ran out of memory at batch size {config.batch_size}; try a smaller "
                f"batch size (e.g. {max(1, config.batch_size // 2)}) or a smaller image size",
                traceback.format_exc())
        else:
            error = PretrainError(f"pretraining failed: {exc.__class__.__name__}: {exc}",
                                  traceback.format_exc(), internal=True)
        if not error.details:
            error.details = traceback.format_exc()
        stream.emit("error", step, message=error.message, details=error.details)
        stream.emit("end", step, status="failed", message=error.message)
        if error is exc:
            raise
        raise error from exc
    finally:
        if writer is not None:
            writer.close()
        distributed.shutdown()
