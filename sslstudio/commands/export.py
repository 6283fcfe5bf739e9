"""`sslstudio export MODEL_DIR --format {torchscript,onnx,safetensors} --out PATH`."""

from __future__ import annotations

import argparse
import sys

FORMAT_CHOICES = ("torchscript", "onnx", "safetensors")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="classifier folder from classify")
    parser.add_argument("--format", required=True, choices=FORMAT_CHOICES, dest="fmt")
    parser.add_argument("--out", required=True, metavar="PATH",
                        help="file to write (or a folder: model.<ext> inside it)")


def run(args: argparse.Namespace) -> int:
    from sslstudio.export.exporters import ExportError, export_model
    from sslstudio.export.model_dir import ModelFileError

    try:
        card = export_model(args.model_dir, args.fmt, args.out)
    except (ExportError, ModelFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    info = card["export"]
    check = info["verification"]
    print(f"exported {args.fmt} → {info['path']}")
    print(f"model card → {info['card_path']}")
    print(f"verified: {check['check']}; max abs difference {check['max_abs_diff']:.2e}")
    print(f"input: {card['input']}; classes: {', '.join(card['classes'])}")
    return 0
