"""`sslstudio pretrain-worker --config FILE --control FILE`: the app's pretraining process.

Not meant to be typed: the app starts it so that training never competes with
the window for Python's interpreter lock. It runs exactly what `sslstudio
pretrain` runs, from a saved PretrainConfig; the app follows the run folder's
metrics.jsonl and steers the run through the control file (run / pause / stop).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import NoReturn

HELP = None  # hidden from `sslstudio --help`


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="FILE",
                        help="a PretrainConfig as JSON")
    parser.add_argument("--control", required=True, metavar="FILE",
                        help="a file holding run, pause or stop")
    add_worker_arguments(parser, "stop (with a checkpoint) when this process is gone")


def add_worker_arguments(parser: argparse.ArgumentParser, parent_gone_help: str) -> None:
    """The options every worker process of the app takes: its parent, its priority."""
    parser.add_argument("--parent-pid", type=int, default=None, metavar="PID",
                        help=parent_gone_help)
    parser.add_argument("--nice", type=int, default=10, metavar="N",
                        help="lower this process's CPU priority by N so the window stays "
                             "responsive (POSIX; 0 keeps it)")


def lower_priority(amount: int) -> None:
    """Let the app's window win every contest for a CPU core (training uses what is left)."""
    if amount <= 0 or not hasattr(os, "nice"):
        return
    try:
        os.nice(amount)
    except OSError:
        pass


def run(args: argparse.Namespace) -> int:
    from sslstudio.train.control import FileRunControl
    from sslstudio.train.pretrain import PretrainConfig, PretrainError, run_pretraining

    try:
        config = PretrainConfig.from_json(Path(args.config).read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError) as exc:
        print(f"error: cannot read the run settings {args.config}: {exc}", file=sys.stderr)
        return 2
    lower_priority(args.nice)
    control = FileRunControl(args.control, parent_pid=args.parent_pid)
    try:
        summary = run_pretraining(config, control=control)
    except PretrainError as exc:  # already in metrics.jsonl as "error" + "end"
        print(f"error: {exc.message}", file=sys.stderr)
        return 1 if exc.internal else 2
    print(f"{summary['status']} after {summary.get('steps', 0)} steps", file=sys.stderr)
    leave_now(0 if summary["status"] in ("completed", "stopped") else 1)


def leave_now(code: int) -> NoReturn:
    """End the process without the interpreter's teardown. Everything is on disk by now (events
    are flushed per line, checkpoints fsynced), and unloading torch takes about 10 s at nice 10
    on a busy machine: the app, waiting for this stop to close, would kill the process first."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
