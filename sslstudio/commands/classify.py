"""`sslstudio classify FOLDER --run RUN_DIR --labels labels.csv --method M --out MODEL_DIR`.

Decodes the folder with the app's preprocessing (reusing the pretraining run's
decoded cache when it holds the same folder), fits the classifier on the
labelled subset, prints the honest (cross-validated) evaluation and a method
recommendation, writes the model folder and MODEL_DIR/predictions.csv (the
unlabeled images, least confident first: the ones worth labelling next).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

from sslstudio.commands.arguments import positive_float, positive_int

# the same names as sslstudio.train.downstream.METHODS (not imported: parsing stays torch-free)
METHOD_CHOICES = ("linear", "semi", "propagate", "selftrain", "partial", "finetune", "scratch", "knn")
# --mirror as ClassifierOptions.augment_average (None: the app decides per folder)
MIRROR_CHOICES = {"auto": None, "on": True, "off": False}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", metavar="FOLDER", help="image folder (labelled + unlabeled)")
    parser.add_argument("--run", required=True, metavar="RUN_DIR",
                        help="pretraining run folder (backbone.safetensors + backbone.json)")
    parser.add_argument("--labels", required=True, metavar="CSV",
                        help="filename,label CSV; paths relative to FOLDER")
    parser.add_argument("--method", choices=METHOD_CHOICES, default="linear",
                        help="semi / propagate / selftrain also learn from the unlabelled images "
                             "in FOLDER (best with few labels; selftrain trains the whole "
                             "network, minutes on a CPU); linear is the plain probe")
    parser.add_argument("--out", required=True, metavar="MODEL_DIR")
    parser.add_argument("--size", type=positive_int, help="image size (default: the run's)")
    parser.add_argument("--epochs", type=positive_int, default=30,
                        help="partial/finetune/scratch: most epochs (early stopping may stop sooner)")
    parser.add_argument("--selftrain-epochs", type=positive_float, default=None, metavar="N",
                        help="selftrain: passes over the unlabelled images (default 20; 40 "
                             "measured 0.6-1.1 points better after a short pretraining, in "
                             "twice the time; docs/benchmarks-classifier.md)")
    parser.add_argument("--stages", type=positive_int, default=1,
                        help="partial: how many of the backbone's last stages to train")
    parser.add_argument("--mirror", choices=tuple(MIRROR_CHOICES), default="auto",
                        help="average features with the mirror image and train on mirrored "
                             "views: auto (default) unless the images have a handedness, like "
                             "text and digits; on for photos that auto takes for handed (burst "
                             "shots, video frames); off for classes that are mirror images of "
                             "each other, such as b / d")
    # the older spelling of --mirror off
    parser.add_argument("--no-flip-average", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--device", help="cpu, cuda, mps (default: the best available)")
    parser.add_argument("--seed", type=int, default=0)


def decode_folder(folder: Path, relpaths: list[str], size: int, progress=None):
    """uint8 N×S×S×3 of the decodable images, their relpaths, (relpath, reason) of the rest."""
    import numpy as np

    from sslstudio.data.decode import DecodeError, load_square

    pixels = np.zeros((len(relpaths), size, size, 3), dtype=np.uint8)
    good, bad = [], []
    for i, relpath in enumerate(relpaths):
        try:
            pixels[len(good)] = load_square(folder / relpath, size)
            good.append(relpath)
        except DecodeError as exc:
            bad.append((relpath, getattr(exc, "reason", str(exc))))
        if progress is not None:
            progress(i + 1, len(relpaths))
    return pixels[:len(good)], good, bad


def pretraining_cache(folder: Path, run_dir: Path, size: int):
    """The run's decoded cache when it holds `folder` at `size`, else None.

    Pretraining decodes every image once (into RUN/../cache or its --cache-dir), so
    classifying the same folder afterwards only decodes what was added since.
    """
    from sslstudio.data.cache import DecodedCache

    cache_dir = run_dir.parent / "cache"
    try:
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
        if isinstance(config, dict) and isinstance(config.get("cache_dir"), str):
            cache_dir = Path(config["cache_dir"])
    except (OSError, ValueError):
        pass
    try:
        cache = DecodedCache.open(cache_dir, size)
    except (OSError, ValueError):
        return None
    return cache if cache.root == str(folder.resolve()) else None


def _run_image_size(run_dir: Path) -> int | None:
    for name in ("backbone.json", "config.json"):
        try:
            config = json.loads((run_dir / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for holder in (config, config.get("config") or {}, config.get("backbone") or {}):
            if isinstance(holder, dict) and isinstance(holder.get("image_size"), int):
                return holder["image_size"]
    return None


def _unwritable_folder(out: Path) -> str | None:
    """Why the model folder ``out`` cannot be written, or None when it can (it may not exist
    yet: its nearest existing parent must then be a writable folder)."""
    if out.exists() and not out.is_dir():
        return "it is a file"
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


def write_unlabeled_predictions(path: Path, result) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["filename", "label", "confidence", *(f"p_{c}" for c in result.classes)])
        for p in result.predictions:           # already least confident first
            writer.writerow([p.id, p.label, f"{p.confidence:.6f}",
                             *(f"{v:.6f}" for v in p.probabilities)])


def run(args: argparse.Namespace) -> int:
    from sslstudio.commands.predict import ProgressBar
    from sslstudio.data.cache import DecodedCache
    from sslstudio.data.scan import scan_folder
    from sslstudio.export.model_dir import save_result
    from sslstudio.export.predict import list_images
    from sslstudio.plural import count
    from sslstudio.project.labels_io import LabelsIOError, read_csv_labels
    from sslstudio.train.downstream import (METHOD_GUIDE, ClassifierOptions, fit_classifier,
                                            recommend_method)
    from sslstudio.train.downstream.inputs import Cancelled
    from sslstudio.train.downstream.metrics import format_report
    from sslstudio.train.downstream.recommend import (pretraining_summary,
                                                      short_pretraining_warning)

    folder, run_dir, out = Path(args.folder), Path(args.run), Path(args.out)
    if args.no_flip_average:
        if args.mirror == "on":
            print("error: --no-flip-average (never mirror) contradicts --mirror on",
                  file=sys.stderr)
            return 2
        args.mirror = "off"
    if not folder.is_dir():
        print(f"error: image folder not found: {folder}", file=sys.stderr)
        return 2
    if not (run_dir / "backbone.safetensors").is_file():
        print(f"error: {run_dir} holds no backbone.safetensors (is it a finished pretraining "
              f"run?)", file=sys.stderr)
        return 2
    problem = _unwritable_folder(out)
    if problem:   # now, not after a fit of many minutes
        print(f"error: cannot save the model in {out}: {problem}", file=sys.stderr)
        return 2
    summary = pretraining_summary(run_dir)
    warning = summary and short_pretraining_warning(summary["steps"])
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    size = args.size or _run_image_size(run_dir) or 64
    cache = pretraining_cache(folder, run_dir, size)
    if cache is not None:
        scan = scan_folder(folder)
        relpaths = [e.relpath for e in scan.images]
    else:
        relpaths = list_images(folder)
    try:
        labels, read = read_csv_labels(Path(args.labels), relpaths, folder)
    except LabelsIOError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in read.read_warnings(folder):
        print(f"warning: {line}", file=sys.stderr)
    if len(set(labels.values())) < 2:   # say so now, not after checking every image
        named = (f"no image of {folder}" if not labels else
                 f"{count(len(labels), 'image')} of {folder}, all "
                 f"{next(iter(labels.values()))!r}")
        print(f"error: {args.labels} labels {named}; a classifier needs labelled images of at "
              f"least two classes", file=sys.stderr)
        return 2
    images = None
    if cache is not None:
        print(f"reusing pretraining's decoded images ({cache.cache_dir}); decoding only new "
              f"or changed files", file=sys.stderr)
        bar = ProgressBar("checking the decoded cache")
        try:
            cache = DecodedCache.build(folder, scan.images, size, cache.cache_dir, progress=bar)
            images, good = cache, list(cache.relpaths)
            bad = [(b.relpath, b.reason) for b in [*scan.bad, *cache.bad]]
        except OSError as exc:  # e.g. a read-only cache folder: decode here instead
            print(f"note: the cache could not be updated ({exc}); decoding the folder",
                  file=sys.stderr)
        bar.close()
    if images is None:
        bar = ProgressBar("decoding")
        images, good, bad = decode_folder(folder, relpaths, size, bar)
        bar.close()
    for relpath, reason in bad:
        print(f"skipped unreadable image {relpath}: {reason}", file=sys.stderr)
    decoded = set(good)
    labels = {r: c for r, c in labels.items() if r in decoded}
    options = ClassifierOptions(seed=args.seed, device=args.device, epochs=args.epochs,
                                trainable_stages=args.stages,
                                augment_average=MIRROR_CHOICES[args.mirror])
    if args.selftrain_epochs is not None:
        options.selftrain = replace(options.selftrain, epochs=args.selftrain_epochs)
    bar = ProgressBar(f"fitting ({args.method})")
    try:
        result = fit_classifier(run_dir, images, labels, args.method, options,
                                ids=None if images is cache else good, progress=bar)
    except (ValueError, FileNotFoundError) as exc:
        bar.close()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Cancelled:
        bar.close()
        print("cancelled", file=sys.stderr)
        return 130
    bar.close()
    try:
        save_result(out, result, size)
        write_unlabeled_predictions(out / "predictions.csv", result)
    except OSError as exc:   # the disk filled up, or the folder went away, during the fit
        print(f"error: cannot save the model in {out}: {exc}", file=sys.stderr)
        return 1

    metrics = result.metrics
    print(f"{len(labels)} labels in {len(result.classes)} classes, {len(good)} images; "
          f"method {args.method}; validation: {metrics['scheme']}")
    for note in metrics["notes"]:
        print(f"note: {note}")
    print(format_report(metrics))
    if result.misclassified:
        print(f"misclassified in validation ({len(result.misclassified)}), most confident first:")
        for m in result.misclassified[:10]:
            print(f"  {m['id']}: {m['true']} → {m['predicted']} ({m['confidence']:.0%})")
    method, reason = recommend_method(len(labels), len(result.classes), result.info["device"])
    print(f"recommended method: {method} — {reason}")
    if method != args.method:
        print(f"  ({METHOD_GUIDE[method]})")
    print(f"model → {out}; {len(result.predictions)} unlabeled predictions → "
          f"{out / 'predictions.csv'} (least confident first)")
    return 0
