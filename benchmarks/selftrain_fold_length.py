"""Does selftrain's validation fold score the same when its network trains for fewer steps?

selftrain validates on one fold, and that fold is a second whole training of the network.
Per label draw (10 random labels per class) this trains the fold's network at full length
and at --share of it, and prints each one's accuracy on the fold's held-out labels and on
the test images. The test images are among the unlabelled images of the fit, as a user's
whole folder is in the app.

  python benchmarks/selftrain_fold_length.py --data mnist --work /tmp/fold [--run RUN]
      [--draws 3] [--share 0.5] [--pretrain-steps 1500] [--json out.json]

--data mnist needs Debian's opencv-doc; --run reuses a pretraining (else 1,500 steps of
contrastive, float32, are run here on the training images first).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import label_efficiency as bench  # noqa: E402

from sslstudio.train.downstream import ClassifierOptions, fit_classifier, selftrain  # noqa: E402
from sslstudio.train.downstream.finetune import predict_probs  # noqa: E402
from sslstudio.train.downstream.fit import fold_settings  # noqa: E402


class _FoldDone(Exception):
    """Raised once the fold is measured: the final fit is not needed here."""


def random_labels(labels: dict, classes: list[str], per_class: int, seed: int) -> dict:
    rng = np.random.default_rng(100 + seed)
    chosen = {}
    for name in classes:
        pool = sorted(k for k, v in labels.items() if v == name)
        chosen.update({k: name for k in rng.choice(pool, per_class, replace=False)})
    return chosen


def measure_draw(backbone, pixels, ids, chosen, classes, test_rows, test_y, draw, share,
                 base: selftrain.SelfTrainSettings) -> dict:
    row = {k: i for i, k in enumerate(ids)}
    labelled = np.array(sorted(row[k] for k in chosen))
    real_self_train = selftrain.self_train
    out = {"draw": draw}

    def fold_both_ways(bb, image_set, feats, fold_labelled, fold_y, n_classes, settings, **kw):
        held = np.setdiff1d(labelled, fold_labelled)
        held_y = np.array([classes.index(chosen[ids[r]]) for r in held])
        out["held_out"] = int(len(held))
        full = replace(settings, epochs=base.epochs, max_steps=base.max_steps)
        short = fold_settings(full, share)   # what the app's fit does, at --share
        for tag, s in (("full", full), ("short", short)):
            started = time.perf_counter()
            model, trained = real_self_train(bb, image_set, feats, fold_labelled, fold_y,
                                             n_classes, s, **kw)
            out[f"{tag}_seconds"] = round(time.perf_counter() - started, 1)
            out[f"{tag}_steps"] = trained["steps"]
            out[f"{tag}_held_out"] = float(
                (predict_probs(model, image_set, held).argmax(1) == held_y).mean())
            out[f"{tag}_test"] = float(
                (predict_probs(model, image_set, test_rows).argmax(1) == test_y).mean())
        raise _FoldDone

    selftrain.self_train = fold_both_ways
    try:
        fit_classifier(backbone, pixels, chosen, "selftrain",
                       ClassifierOptions(device="cpu", seed=draw, selftrain=base), ids=ids)
    except _FoldDone:
        pass
    finally:
        selftrain.self_train = real_self_train
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=("mnist", "digits", "fonts", "sample"), required=True)
    parser.add_argument("--work", required=True, help="folder for the images and the run")
    parser.add_argument("--run", help="a pretraining run to reuse")
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--share", type=float, default=0.5, help="the fold's share of the steps")
    parser.add_argument("--pretrain-steps", type=int, default=1500)
    parser.add_argument("--precision", default="float32", choices=("auto", "float32"))
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args(argv)

    data_args = argparse.Namespace(
        size=32, run=args.run, mnist_sheet=bench.OPENCV_DIGITS, sample_per_class=300,
        task="contrastive", task_option=[], pretrain_steps=args.pretrain_steps,
        pretrain_minutes=10, pretrain_batch=64, pretrain_seed=0, precision=args.precision)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    backbone, pixels, ids, labels, test_labels = getattr(bench, f"{args.data}_data")(
        data_args, work)
    classes = sorted(set(labels.values()))
    row = {k: i for i, k in enumerate(ids)}
    test_rows = np.array([row[k] for k in test_labels])
    test_y = np.array([classes.index(test_labels[k]) for k in test_labels])
    base = selftrain.SelfTrainSettings(precision=args.precision)

    results = []
    for draw in range(args.draws):
        chosen = random_labels(labels, classes, args.per_class, draw)
        results.append(measure_draw(backbone, pixels, ids, chosen, classes, test_rows, test_y,
                                    draw, args.share, base))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)

    print(f"\n{args.data}: selftrain's validation fold at full length and at {args.share:g} "
          f"of it, {args.per_class} random labels per class, {args.draws} draws")
    print(f"{'':12}{'full':>10}{'short':>10}{'short - full':>16}")
    for key, name in (("held_out", "held out"), ("test", "test"),
                      ("seconds", "seconds"), ("steps", "steps")):
        full = np.array([r[f"full_{key}"] for r in results], dtype=float)
        short = np.array([r[f"short_{key}"] for r in results], dtype=float)
        scale = 100 if key in ("held_out", "test") else 1
        diff = (short - full) * scale
        print(f"{name:12}{full.mean() * scale:10.1f}{short.mean() * scale:10.1f}"
              f"{diff.mean():+10.1f} ± {diff.std():.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"data": args.data, "share": args.share,
                                               "draws": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
