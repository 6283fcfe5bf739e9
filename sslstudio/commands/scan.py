"""`sslstudio scan FOLDER [--json] [--no-check]`: index an image folder, report unreadable files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sslstudio.data.formats import human_bytes
from sslstudio.plural import count


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", metavar="FOLDER", help="image folder (searched recursively)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object instead of the summary (for scripts)")
    parser.add_argument("--no-check", action="store_true",
                        help="do not open file headers (faster; only empty files are reported)")


def run(args: argparse.Namespace) -> int:
    from sslstudio.data.scan import scan_folder

    folder = Path(args.folder).expanduser()
    if not folder.exists():
        print(f"sslstudio scan: folder not found: {folder}", file=sys.stderr)
        return 2
    if not folder.is_dir():
        print(f"sslstudio scan: not a folder: {folder}", file=sys.stderr)
        return 2
    result = scan_folder(folder, check_headers=not args.no_check)
    if args.json:
        print(json.dumps({
            "root": str(result.root),
            "count": result.count,
            "total_bytes": result.total_bytes,
            "by_extension": result.by_extension(),
            "bad": [{"relpath": b.relpath, "reason": b.reason} for b in result.bad],
            "seconds": round(result.seconds, 4),
        }))
        return 0
    print(f"{result.root}: {count(result.count, 'image')}, {human_bytes(result.total_bytes)} "
          f"({result.seconds:.2f} s)")
    for ext, n in result.by_extension().items():
        print(f"  {ext:6s} {n}")
    if result.bad:
        print(f"{count(len(result.bad), 'unreadable file')}, skipped:")
        for bad in result.bad:
            print(f"  {bad.relpath}: {bad.reason}")
    return 0
