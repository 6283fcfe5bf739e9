"""Accuracy against the number of labels: what pretraining buys at 1, 5, 10, 25 labels per class.

For each seed and labels-per-class level, that many labels per class are drawn
from the user's labels; each method is fitted on them alone and scored on the
rest of the labels (or on a separate test set when one is given).
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from sslstudio.train.downstream.fit import ClassifierOptions, fit_classifier, load_pretrained
from sslstudio.train.downstream.inputs import (CancelFn, ProgressFn, align_labels, as_image_set,
                                               check_cancel)
from sslstudio.train.downstream.selection import balanced_accuracy

DEFAULT_LEVELS = (1, 5, 10, 25)
DEFAULT_METHODS = ("linear", "scratch")


def _draw(labels: dict[str, str], per_class: int, seed: int) -> dict[str, str] | None:
    """per_class labels of each class (at least one of each class left to test on), or None."""
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[str]] = {}
    for image_id, cls in sorted(labels.items()):
        by_class.setdefault(cls, []).append(image_id)
    if any(len(ids) <= per_class for ids in by_class.values()):
        return None
    chosen = {}
    for cls, ids in by_class.items():
        for i in rng.choice(len(ids), size=per_class, replace=False):
            chosen[ids[i]] = cls
    return chosen


def label_efficiency(backbone, images, labels, *, ids=None, levels=DEFAULT_LEVELS,
                     methods=DEFAULT_METHODS, seeds=(0, 1, 2),
                     options: ClassifierOptions | None = None,
                     test_labels: dict[str, str] | None = None,
                     progress: ProgressFn | None = None,
                     cancel: CancelFn | None = None) -> dict:
    """{"rows": one per (method, level, seed), "summary": mean ± std per (method, level),
    "skipped": levels some class has too few labels for}.

    test_labels: id → class of images (among `images`) to score on instead of
    the held-out rest of `labels`; they are never used for training.
    """
    backbone, _ = load_pretrained(backbone)
    image_set = as_image_set(images, ids)
    per_row = align_labels(image_set, labels)
    pool = {i: c for i, c in zip(image_set.ids, per_row) if c is not None}
    if test_labels:
        pool = {i: c for i, c in pool.items() if i not in test_labels}
    base = replace(options or ClassifierOptions(), validate=False)
    rows, skipped = [], []
    total = len(levels) * len(methods) * len(seeds)
    done = 0
    for level in levels:
        for seed in seeds:
            train = _draw(pool, level, seed)
            if train is None:
                if level not in skipped:
                    skipped.append(level)
                done += len(methods)
                continue
            truth = test_labels or {i: c for i, c in pool.items() if i not in train}
            for method in methods:
                check_cancel(cancel)
                started = time.perf_counter()
                result = fit_classifier(backbone, image_set, train, method,
                                        replace(base, seed=seed), cancel=cancel)
                predicted = {p.id: p.label for p in result.predictions}
                scored = [i for i in truth if i in predicted]
                true = np.array([truth[i] for i in scored])
                pred = np.array([predicted[i] for i in scored])
                rows.append({"method": method, "per_class": level, "seed": seed,
                             "accuracy": float(np.mean(true == pred)) if scored else None,
                             "balanced_accuracy": balanced_accuracy(true, pred) if scored else None,
                             "n_train": len(train), "n_test": len(scored),
                             "seconds": round(time.perf_counter() - started, 3)})
                done += 1
                if progress is not None:
                    progress(done, total)
    return {"rows": rows, "summary": summarise(rows), "skipped_levels": skipped}


def summarise(rows: list[dict]) -> list[dict]:
    groups: dict[tuple[str, int], list[float]] = {}
    for row in rows:
        if row["accuracy"] is not None:
            groups.setdefault((row["method"], row["per_class"]), []).append(row["accuracy"])
    return [{"method": m, "per_class": n, "mean": float(np.mean(v)), "std": float(np.std(v)),
             "n_seeds": len(v)} for (m, n), v in sorted(groups.items(), key=lambda kv: kv[0][::-1])]


def format_table(summary: list[dict], methods: tuple[str, ...] | None = None) -> str:
    """labels per class (rows) × method (columns): mean ± std accuracy over seeds."""
    methods = list(methods or dict.fromkeys(r["method"] for r in summary))
    levels = sorted({r["per_class"] for r in summary})
    cell = {(r["method"], r["per_class"]): r for r in summary}
    lines = ["labels/class | " + " | ".join(f"{m:>15}" for m in methods)]
    lines.append("-" * len(lines[0]))
    for level in levels:
        parts = []
        for m in methods:
            r = cell.get((m, level))
            parts.append(f"{r['mean']:6.1%} ± {r['std']:5.1%}" if r else f"{'-':>15}")
        lines.append(f"{level:>12} | " + " | ".join(parts))
    return "\n".join(lines)
