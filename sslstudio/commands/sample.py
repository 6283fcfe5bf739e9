"""`sslstudio sample DEST`: write the built-in procedural sample dataset to a folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sslstudio.commands.arguments import int_at_least, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sslstudio.data.sample import DEFAULT_PER_CLASS

    parser.add_argument("dest", metavar="DEST", nargs="?",
                        help="folder to write into (default: the app's sample folder)")
    parser.add_argument("--per-class", type=positive_int, default=DEFAULT_PER_CLASS,
                        help=f"images per class (default {DEFAULT_PER_CLASS})")
    parser.add_argument("--size", type=int_at_least(16), default=64,
                        help="image side in pixels (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def run(args: argparse.Namespace) -> int:
    from sslstudio import paths
    from sslstudio.data.sample import CLASSES, TRUTH_FILE, generate_sample_dataset

    dest = Path(args.dest).expanduser() if args.dest else paths.sample_images_dir()
    if dest.exists() and not dest.is_dir():
        print(f"sslstudio sample: not a folder: {dest}", file=sys.stderr)
        return 2
    total = args.per_class * len(CLASSES)
    interactive = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if interactive:
            print(f"\rwriting images {done}/{total}", end="", file=sys.stderr, flush=True)

    generate_sample_dataset(dest, n_per_class=args.per_class, size=args.size, seed=args.seed,
                            progress=progress)
    if interactive:
        print(file=sys.stderr)
    print(f"{dest}: {total} images in {len(CLASSES)} classes ({', '.join(CLASSES)}); "
          f"true labels in {dest / TRUTH_FILE}")
    return 0
