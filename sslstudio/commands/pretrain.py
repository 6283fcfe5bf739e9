"""`sslstudio pretrain FOLDER --out RUN_DIR [--task T]`: pretrain a backbone from the console.

Runs alone or under ``torchrun --nproc_per_node=N`` (DistributedDataParallel).
Ctrl-C once stops cleanly (checkpoint written, resumable with --resume); twice aborts.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from sslstudio.commands.arguments import positive_float, positive_int

HELP = "pretrain a backbone with a self-supervised pretext task"
TASK_NAMES = ("rotation", "jigsaw", "inpainting", "colorization", "contrastive",
              "contrastive_rotation")   # for --help without importing torch (a test checks)
# The app's recommendation too (the Pretrain page's suggested_defaults; a test keeps them
# equal): the task whose features measured best after minutes on a CPU
# (docs/benchmarks-pretext.md).
DEFAULT_TASK = "contrastive"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", metavar="FOLDER", help="the image folder (read only)")
    parser.add_argument("--task", default=DEFAULT_TASK, metavar="TASK",
                        help=f"pretext task: {', '.join(TASK_NAMES)} (default: {DEFAULT_TASK}, "
                             f"the app's recommendation)")
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="the run folder")
    parser.add_argument("--backbone", default="small_cnn",
                        help="small_cnn (fast on CPU), resnet18, resnet34, resnet50")
    parser.add_argument("--weights", default=None, metavar="FILE",
                        help="start from these backbone weights (a local file)")
    parser.add_argument("--image-size", type=positive_int, default=None, metavar="N",
                        help="training resolution (default: 32 on a CPU, where it buys 4x "
                             "the steps of 64 in the same time; 64 on a GPU)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=positive_int, default=None, metavar="N",
                        help="passes over the images (no budget given: 10 epochs, but at most "
                             "10 minutes, planned from the measured speed)")
    budget.add_argument("--minutes", type=positive_float, default=None, metavar="M",
                        help="training time; the schedule is planned from the measured speed")
    budget.add_argument("--steps", type=positive_int, default=None, metavar="N")
    parser.add_argument("--batch-size", type=positive_int, default=64, metavar="N",
                        help="images per step (per process under torchrun)")
    parser.add_argument("--lr", type=positive_float, default=1e-3, metavar="X")
    parser.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw")
    parser.add_argument("--weight-decay", type=float, default=0.05, metavar="X")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    parser.add_argument("--precision", default="auto", choices=("auto", "float32"),
                        help="auto (default): mixed precision where the hardware has it "
                             "(bf16/fp16 on CUDA, bf16 on CPUs with AVX512-BF16 or AMX); "
                             "float32: none")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="processes decoding images into the cache")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in RUN_DIR from its last checkpoint")
    parser.add_argument("--labels", default=None, metavar="CSV",
                        help="relpath,class CSV: report kNN accuracy of the features while training")
    parser.add_argument("--cache-dir", default=None, metavar="DIR",
                        help="where decoded images are cached (default: RUN_DIR/../cache)")
    parser.add_argument("--task-option", action="append", default=[], metavar="KEY=VALUE",
                        help="a task setting, e.g. temperature=0.2 (repeatable; JSON values)")
    parser.add_argument("--preview-every", type=int, default=100, metavar="STEPS")
    parser.add_argument("--quality-every", type=int, default=200, metavar="STEPS")
    parser.add_argument("--checkpoint-every", type=int, default=500, metavar="STEPS")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def read_labels(path: Path, folder: Path) -> dict[str, str]:
    """relpath → class from a labels CSV, matched against the images of `folder` like
    `sslstudio classify` does; warns about names it cannot match, and refuses a file
    that matches none (the kNN accuracy would silently be missing)."""
    from sslstudio.data.scan import scan_folder
    from sslstudio.plural import count
    from sslstudio.project.labels_io import LabelsIOError, read_csv_labels

    relpaths = [e.relpath for e in scan_folder(folder).images]
    try:
        labels, read = read_csv_labels(path, relpaths, folder)
    except LabelsIOError as exc:
        raise ValueError(str(exc)) from None
    if not labels:
        example = f" (the first: {read.unknown_files[0]!r})" if read.unknown_files else ""
        raise ValueError(f"{path} labels none of the {count(len(relpaths), 'image')} in "
                         f"{folder}{example}; write paths relative to that folder, or file "
                         f"names")
    for line in read.read_warnings(folder):
        print(f"warning: {line}", file=sys.stderr)
    return labels


def parse_task_options(items: list[str]) -> dict:
    """--task-option KEY=VALUE strings as a dict (JSON values; anything else as text)."""
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"task option {item!r} is not KEY=VALUE")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def default_image_size(device: str) -> int:
    """32 px when training runs on the CPU, 64 on an accelerator (docs/benchmarks-pretext.md)."""
    if device == "cpu":
        return 32
    if device in ("cuda", "mps") or device.startswith("cuda:"):
        return 64
    from sslstudio.train.device import pick_device

    try:
        return 32 if pick_device(device).type == "cpu" else 64
    except Exception:  # noqa: BLE001 - the engine reports a bad device with its own message
        return 32


def build_config(args: argparse.Namespace):
    from sslstudio.train.pretrain import PretrainConfig

    out = Path(args.out)
    labels = None
    if args.resume:
        config = PretrainConfig.for_resume(out)
        if args.labels:
            labels = read_labels(Path(args.labels), Path(config.folder))
        # what may change on resume without changing the computation
        config.device = args.device
        if args.workers is not None:
            config.workers = args.workers
        if labels is not None:
            config.labels = labels
        return config
    if args.labels:
        labels = read_labels(Path(args.labels), Path(args.folder))
    image_size = args.image_size or default_image_size(args.device)
    return PretrainConfig(
        folder=str(args.folder), out=str(out), task=args.task,
        task_options=parse_task_options(args.task_option), backbone=args.backbone,
        weights=args.weights, image_size=image_size, epochs=args.epochs,
        minutes=args.minutes, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
        optimizer=args.optimizer, weight_decay=args.weight_decay, device=args.device,
        precision=args.precision, workers=args.workers, seed=args.seed, preview_every=args.preview_every,
        quality_every=args.quality_every, checkpoint_every=args.checkpoint_every,
        labels=labels, cache_dir=args.cache_dir)


def run(args: argparse.Namespace) -> int:
    from sslstudio.train import distributed
    from sslstudio.train.control import RunControl
    from sslstudio.train.events import ConsoleProgress
    from sslstudio.train.pretrain import PretrainError, run_pretraining

    folder = Path(args.folder)
    if not folder.is_dir():
        return _fail(f"image folder not found: {folder}")
    if args.task not in TASK_NAMES:
        try:
            from sslstudio.pretext import TASKS
            known = tuple(TASKS)
        except ImportError:
            known = TASK_NAMES
        if args.task not in known:
            return _fail(f"unknown task {args.task!r}; choose one of {', '.join(known)}")
    try:
        config = build_config(args)
    except (OSError, ValueError) as exc:
        return _fail(str(exc))

    control = RunControl()
    interrupts = [0]

    def on_sigint(signum, frame):  # first Ctrl-C: stop cleanly; second: abort
        interrupts[0] += 1
        if interrupts[0] > 1:
            raise KeyboardInterrupt
        print("\nstopping after this step (Ctrl-C again to abort)…", file=sys.stderr)
        control.stop()

    previous = signal.signal(signal.SIGINT, on_sigint)
    listeners = [] if args.quiet or not distributed.from_env().is_main else [ConsoleProgress()]
    try:
        summary = run_pretraining(config, listeners=listeners, control=control)
    except PretrainError as exc:
        if not any(getattr(l, "shown_error", None) == exc.message for l in listeners):
            print(f"error: {exc.message}", file=sys.stderr)  # not yet on the console
        return 1 if exc.internal else 2
    finally:
        signal.signal(signal.SIGINT, previous)
    if distributed.from_env().is_main and not args.quiet:
        print(f"run folder: {config.out} ({summary['status']}, {summary['steps']} steps); "
              f"backbone: {Path(config.out) / 'backbone.safetensors'}", file=sys.stderr)
        if summary["status"] == "stopped" and summary.get("steps"):
            print(f"continue with: sslstudio pretrain {config.folder} --task {config.task} "
                  f"--out {config.out} --resume", file=sys.stderr)
    return 0 if summary["status"] in ("completed", "stopped") else 1
