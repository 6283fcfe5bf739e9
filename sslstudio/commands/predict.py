"""`sslstudio predict MODEL FOLDER [--csv OUT]`: classify a folder with an exported model."""

from __future__ import annotations

import argparse
import sys
import time

from sslstudio.commands.arguments import positive_int
from sslstudio.train.events import format_duration
from sslstudio.train.time_left import TimeLeft


class ProgressBar:
    """A one-line text progress bar on stderr (redrawn at most ~10 times a second)."""

    def __init__(self, label: str, stream=None, width: int = 30) -> None:
        self.label, self.stream, self.width = label, stream or sys.stderr, width
        self.time_left = TimeLeft()
        self._last = 0.0
        self._drawn = False
        self._length = 0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        left = self.time_left.update(done, total)  # ten samples a second are plenty
        filled = int(self.width * done / total) if total else self.width
        bar = "#" * filled + "-" * (self.width - filled)
        line = f"{self.label} [{bar}] {done}/{total}"
        if left is not None and done < total:
            line += f" ETA {format_duration(left)}"
        # pad over the end of a longer previous line (the ETA comes and goes)
        self.stream.write("\r" + line.ljust(self._length))
        self._length = len(line)
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL",
                        help="exported model (.pt TorchScript, .onnx, .safetensors) or a "
                             "model folder")
    parser.add_argument("folder", metavar="FOLDER", help="folder of images (searched recursively)")
    parser.add_argument("--csv", metavar="OUT",
                        help="write filename,label,confidence,p_<class>... here (default: stdout)")
    parser.add_argument("--batch-size", type=positive_int, default=64)


def run(args: argparse.Namespace) -> int:
    from sslstudio.export.model_dir import ModelFileError
    from sslstudio.export.predict import load_predictor, predict_folder, write_predictions_csv

    try:
        predictor = load_predictor(args.model)
    except ModelFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    bar = ProgressBar("predicting")
    try:
        result = predict_folder(args.model, args.folder, args.batch_size, progress=bar,
                                predictor=predictor)
    except (FileNotFoundError, NotADirectoryError) as exc:
        bar.close()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    bar.close()
    try:
        write_predictions_csv(result, args.csv, stream=sys.stdout)
    except OSError as exc:
        print(f"error: cannot write {args.csv}: {exc}", file=sys.stderr)
        return 2
    for relpath, reason in result.bad:
        print(f"skipped unreadable image {relpath}: {reason}", file=sys.stderr)
    where = f" → {args.csv}" if args.csv else ""
    print(f"{len(result.rows)} images predicted{where}"
          + (f", {len(result.bad)} unreadable skipped" if result.bad else ""), file=sys.stderr)
    return 0
