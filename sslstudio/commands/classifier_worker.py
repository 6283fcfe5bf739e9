"""`sslstudio classifier-worker --job DIR`: the app's classifier fit, in its own process.

Not meant to be typed: the Classifier page starts it (as it starts pretrain-worker)
so that the fit trains on every core without the window waiting for its Python code.
The job folder is described in sslstudio/train/classifier_job.py.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

from sslstudio.commands.pretrain_worker import add_worker_arguments, leave_now, lower_priority

HELP = None  # hidden from `sslstudio --help`

PROGRESS_EVERY_S = 0.1   # the page reads progress.json ten times a second


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--job", required=True, metavar="DIR",
                        help="a job folder holding job.json")
    add_worker_arguments(parser, "cancel when this process is gone")


class _ProgressFile:
    """progress(done, total) for the fit, written to a file at most ten times a second."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.written = 0.0

    def __call__(self, done, total, *_ignored) -> None:
        from sslstudio.train.classifier_job import write_json_atomically

        now = time.monotonic()
        if now - self.written < PROGRESS_EVERY_S and done < total:
            return
        self.written = now
        try:
            write_json_atomically(self.path, {"done": int(done), "total": int(total)})
        except OSError:  # progress is a courtesy; the fit goes on
            pass


def run(args: argparse.Namespace) -> int:
    from sslstudio.train.classifier_job import (CONTROL_FILE, JOB_FILE, OUTCOME_FILE,
                                                PROGRESS_FILE, ClassifierJob, failed_outcome,
                                                run_classifier_job, write_json_atomically)
    from sslstudio.train.control import FileRunControl
    from sslstudio.train.downstream.inputs import Cancelled

    folder = Path(args.job)
    try:
        job = ClassifierJob.from_json((folder / JOB_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError) as exc:
        print(f"error: cannot read the classifier job in {folder}: {exc}", file=sys.stderr)
        return 2
    lower_priority(args.nice)
    control = FileRunControl(folder / CONTROL_FILE, parent_pid=args.parent_pid)
    try:
        outcome = run_classifier_job(job, progress=_ProgressFile(folder / PROGRESS_FILE),
                                     cancel=lambda: control.stop_requested)
        code = 0
    except Cancelled:
        outcome, code = {"status": "cancelled"}, 0
    except Exception as exc:  # noqa: BLE001 - every failure must reach the page, in words
        outcome, code = failed_outcome(exc, traceback.format_exc()), 1
        print(outcome["details"], file=sys.stderr)
    write_json_atomically(folder / OUTCOME_FILE, outcome)
    leave_now(code)
