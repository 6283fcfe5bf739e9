"""`sslstudio evaluate MODEL_DIR TEST_FOLDER [--json]`: figures on a labelled test folder.

TEST_FOLDER has one subfolder per class (ImageFolder layout). MODEL_DIR may also
be an exported file (.pt, .onnx, .safetensors).
"""

from __future__ import annotations

import argparse
import json
import sys

from sslstudio.commands.arguments import positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="classifier folder or exported file")
    parser.add_argument("test_folder", metavar="TEST_FOLDER", help="one subfolder per class")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--batch-size", type=positive_int, default=64)


def evaluate_folder(model, test_folder, batch_size: int = 64, progress=None) -> dict:
    """Accuracy, balanced accuracy, per-class figures and confusion matrix on an ImageFolder."""
    from pathlib import Path

    from sslstudio.export.predict import load_predictor, predict_folder
    from sslstudio.train.downstream.metrics import classification_report

    predictor = load_predictor(model)
    folder = Path(test_folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"test folder not found: {folder}")
    result = predict_folder(model, folder, batch_size, progress=progress, predictor=predictor)
    index = {c: i for i, c in enumerate(predictor.classes)}
    true, pred, unknown, misclassified = [], [], {}, []
    for relpath, label, conf, _ in result.rows:
        truth = relpath.split("/", 1)[0] if "/" in relpath else None
        if truth not in index:
            unknown[truth or "(top level)"] = unknown.get(truth or "(top level)", 0) + 1
            continue
        true.append(index[truth])
        pred.append(index[label])
        if label != truth:
            misclassified.append({"file": relpath, "true": truth, "predicted": label,
                                  "confidence": round(conf, 6)})
    report = classification_report(true, pred, predictor.classes)
    report["misclassified"] = sorted(misclassified, key=lambda m: -m["confidence"])
    report["unreadable"] = [{"file": f, "reason": r} for f, r in result.bad]
    report["skipped_unknown_classes"] = unknown
    report["model"] = str(model)
    report["test_folder"] = str(folder)
    return report


def run(args: argparse.Namespace) -> int:
    from sslstudio.commands.predict import ProgressBar
    from sslstudio.export.model_dir import ModelFileError
    from sslstudio.train.downstream.metrics import format_report

    bar = None if args.json else ProgressBar("evaluating")
    try:
        report = evaluate_folder(args.model_dir, args.test_folder, args.batch_size, bar)
    except (ModelFileError, FileNotFoundError) as exc:
        if bar:
            bar.close()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report))
        return 0
    bar.close()
    print(format_report(report))
    for name, count in report["skipped_unknown_classes"].items():
        print(f"note: {count} images in '{name}' skipped (not a class of the model)")
    for bad in report["unreadable"]:
        print(f"note: unreadable {bad['file']}: {bad['reason']}")
    if report["misclassified"]:
        print(f"{len(report['misclassified'])} misclassified, most confident first:")
        for m in report["misclassified"][:10]:
            print(f"  {m['file']}: {m['true']} → {m['predicted']} ({m['confidence']:.0%})")
    return 0
