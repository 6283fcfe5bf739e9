"""`sslstudio evaluate MODEL_DIR TEST_FOLDER [--labels CSV] [--json]`: figures on labelled test images.

The true classes come from TEST_FOLDER's subfolders (ImageFolder layout) or, with --labels,
from a filename,label CSV like the one `classify` reads (a flat folder works then). MODEL_DIR
may also be an exported file (.pt, .onnx, .safetensors).
"""

from __future__ import annotations

import argparse
import json
import sys

from sslstudio.commands.arguments import positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="classifier folder or exported file")
    parser.add_argument("test_folder", metavar="TEST_FOLDER",
                        help="one subfolder per class, or any layout with --labels")
    parser.add_argument("--labels", default=None, metavar="CSV",
                        help="filename,label CSV (paths relative to TEST_FOLDER): the true "
                             "classes; images it does not name are left out")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--batch-size", type=positive_int, default=64)


class NothingToEvaluate(ValueError):
    """No test image has a true class that the model knows."""


def evaluate_folder(model, test_folder, batch_size: int = 64, progress=None,
                    labels_csv=None) -> dict:
    """Accuracy, balanced accuracy, per-class figures and confusion matrix on test images
    whose classes come from their subfolders, or from ``labels_csv`` when given."""
    from pathlib import Path

    from sslstudio.export.predict import list_images, load_predictor, predict_folder
    from sslstudio.project.labels_io import read_csv_labels
    from sslstudio.train.downstream.metrics import classification_report

    predictor = load_predictor(model)
    folder = Path(test_folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"test folder not found: {folder}")
    truths, unmatched = None, []
    relpaths = list_images(folder)
    if labels_csv is not None:   # read before predicting: a bad file fails at once
        truths, read = read_csv_labels(Path(labels_csv), relpaths, folder)
        unmatched = read.unknown_files
    result = predict_folder(model, folder, batch_size, progress=progress, predictor=predictor,
                            relpaths=relpaths)
    index = {c: i for i, c in enumerate(predictor.classes)}
    true, pred, unknown, misclassified, unlabelled = [], [], {}, [], 0
    for relpath, label, conf, _ in result.rows:
        if truths is not None:
            truth = truths.get(relpath)
            if truth is None:
                unlabelled += 1
                continue
        else:
            truth = relpath.split("/", 1)[0] if "/" in relpath else None
        if truth not in index:
            unknown[truth or "(top level)"] = unknown.get(truth or "(top level)", 0) + 1
            continue
        true.append(index[truth])
        pred.append(index[label])
        if label != truth:
            misclassified.append({"file": relpath, "true": truth, "predicted": label,
                                  "confidence": round(conf, 6)})
    if not true:
        where = (f"{labels_csv} names no image of {folder} with one of the model's classes"
                 if truths is not None else
                 f"{folder} has no subfolder named after one of the model's classes (it needs "
                 f"one subfolder per class, or --labels CSV)")
        raise NothingToEvaluate(f"nothing to evaluate: {where}; the model's classes: "
                                f"{', '.join(predictor.classes)}")
    report = classification_report(true, pred, predictor.classes)
    report["misclassified"] = sorted(misclassified, key=lambda m: -m["confidence"])
    report["unreadable"] = [{"file": f, "reason": r} for f, r in result.bad]
    report["skipped_unknown_classes"] = unknown
    if truths is not None:
        report["labels_csv"] = str(labels_csv)
        report["skipped_unlabelled"] = unlabelled
        report["labels_not_found"] = unmatched
    report["model"] = str(model)
    report["test_folder"] = str(folder)
    return report


def run(args: argparse.Namespace) -> int:
    from sslstudio.commands.predict import ProgressBar
    from sslstudio.export.model_dir import ModelFileError
    from sslstudio.project.labels_io import LabelsIOError
    from sslstudio.train.downstream.metrics import format_report

    bar = None if args.json else ProgressBar("evaluating")
    try:
        report = evaluate_folder(args.model_dir, args.test_folder, args.batch_size, bar,
                                 labels_csv=args.labels)
    except (ModelFileError, FileNotFoundError, LabelsIOError, NothingToEvaluate) as exc:
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
    if report.get("skipped_unlabelled"):
        print(f"note: {report['skipped_unlabelled']} images not named in {args.labels} skipped")
    missing = report.get("labels_not_found") or []
    if missing:
        print(f"note: {len(missing)} files named in {args.labels} not found: "
              f"{', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}")
    for bad in report["unreadable"]:
        print(f"note: unreadable {bad['file']}: {bad['reason']}")
    if report["misclassified"]:
        print(f"{len(report['misclassified'])} misclassified, most confident first:")
        for m in report["misclassified"][:10]:
            print(f"  {m['file']}: {m['true']} → {m['predicted']} ({m['confidence']:.0%})")
    return 0
