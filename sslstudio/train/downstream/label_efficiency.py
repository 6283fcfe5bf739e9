"""Accuracy against the number of labels: what pretraining buys at 1, 5, 10, 25 labels per class.

For each seed and labels-per-class level, a set of labels is chosen from the
user's labels — the same set for every method — and each method is fitted on
it alone. Scoring:

* with `test_labels` (a separate test set among the images): the test images
  are held out of the fit entirely (not even as unlabelled images for the
  semi-supervised methods) and scored with the fitted model — an inductive,
  honest figure;
* without: the fit sees every image, and the labelled images not chosen are
  scored (for semi / propagate they took part as unlabelled images, which is
  how they are used in the app).

Label choice: "random" draws `level` labels of every class, a balance no user gets
without knowing the labels; "uniform" draws `level × classes` images at random from
the pool, as a user who labels a random sample does (classes come as often as they
are in the data, a rare one maybe not at all); the suggestion
strategies ("kcenter", "kmeans", see project/suggest.py) pick `level × classes`
images from the pretrained embedding without looking at the labels, so some
classes may get more labels than others, or none. "app" is exactly what a user
who follows the Label page gets: rounds of its "What to label next?" (SUGGEST_COUNT
images each, from the mirror-averaged backbone features the Inspect page computes) until
`level × classes` images are labelled.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch

from sslstudio.project.suggest import SUGGEST_COUNT
from sslstudio.train.downstream.features import cached_features
from sslstudio.train.downstream.fit import (FEATURE_METHODS, ClassifierOptions, fit_classifier,
                                            load_pretrained, pick_device)
from sslstudio.train.downstream.inputs import (CancelFn, ImageSet, ProgressFn, align_labels,
                                               as_image_set, check_cancel)
from sslstudio.train.downstream.selection import balanced_accuracy

DEFAULT_LEVELS = (1, 5, 10, 25)
DEFAULT_METHODS = ("linear", "scratch")
CHOICES = ("random", "uniform", "kcenter", "kmeans", "app")


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


def _uniform(labels: dict[str, str], budget: int, seed: int) -> dict[str, str] | None:
    """`budget` images drawn at random from the whole pool, with their labels, or None when
    that is every image or the draw holds a single class."""
    pool = sorted(labels)
    if budget >= len(pool):
        return None
    rows = np.random.default_rng(seed).choice(len(pool), size=budget, replace=False)
    chosen = {pool[r]: labels[pool[r]] for r in rows}
    return chosen if len(set(chosen.values())) >= 2 else None


def _suggested(labels: dict[str, str], embedding: dict[str, np.ndarray], budget: int,
               strategy: str, seed: int) -> dict[str, str] | None:
    """`budget` images of the labelled pool picked by a suggestion strategy, with their labels."""
    from sslstudio.project.suggest import k_center_greedy, representative_sample

    pool = sorted(i for i in labels if i in embedding)
    if budget >= len(pool):
        return None
    x = np.stack([embedding[i] for i in pool])
    rows = (k_center_greedy(x, budget, seed=seed) if strategy == "kcenter"
            else representative_sample(x, budget, seed=seed))
    chosen = {pool[r]: labels[pool[r]] for r in rows}
    return chosen if len(set(chosen.values())) >= 2 else None


def _app_rounds(labels: dict[str, str], features: dict[str, np.ndarray], budget: int,
                seed: int, round_size: int) -> dict[str, str] | None:
    """The labels a user gets by pressing "What to label next?" and labelling every suggestion,
    round after round, until `budget` images are labelled."""
    from sslstudio.project.suggest import suggest_next

    pool = sorted(i for i in labels if i in features)
    if budget >= len(pool):
        return None
    chosen: dict[str, str] = {}
    while len(chosen) < budget:
        # the page seeds with the number of labels; the benchmark seed varies the draws
        picked, _ = suggest_next(pool, chosen, min(round_size, budget - len(chosen)),
                                 embeddings=features, seed=seed * 100003 + len(chosen))
        if not picked:
            break
        chosen.update({i: labels[i] for i in picked})
    return chosen if len(set(chosen.values())) >= 2 else None


def _subset(image_set: ImageSet, positions: np.ndarray) -> ImageSet:
    return ImageSet(image_set.pixels, [image_set.ids[i] for i in positions],
                    image_set.rows[positions])


def _test_probs(result, backbone, test_set: ImageSet, options: ClassifierOptions) -> np.ndarray:
    """Class probabilities of the fitted model on the test images (cached features where the
    backbone is the frozen pretrained one)."""
    from sslstudio.train.downstream.finetune import predict_probs

    model = result.model
    if result.method in FEATURE_METHODS:
        feats = cached_features(backbone, test_set, batch_size=options.batch_size,
                                device=pick_device(options.device),
                                augment_average=bool(model.flip_average))
        with torch.no_grad():
            out = model.head(torch.from_numpy(feats)).double()
        return out.numpy() if model.head_kind == "knn" else torch.softmax(out, 1).numpy()
    return predict_probs(model, test_set, np.arange(len(test_set)),
                         pick_device(options.device))


def label_efficiency(backbone, images, labels, *, ids=None, levels=DEFAULT_LEVELS,
                     methods=DEFAULT_METHODS, seeds=(0, 1, 2),
                     options: ClassifierOptions | None = None,
                     test_labels: dict[str, str] | None = None,
                     choices: tuple[str, ...] = ("random",),
                     choice_methods: tuple[str, ...] | None = None,
                     progress: ProgressFn | None = None,
                     cancel: CancelFn | None = None) -> dict:
    """{"rows": one per (method, choice, level, seed), "summary": mean ± std per (method, choice,
    level), "skipped_levels": levels some class has too few labels for}.

    test_labels: id → class of images (among `images`) to score on instead of
    the held-out rest of `labels`; they are never used for fitting.
    choices: label-choice strategies (CHOICES); the non-random ones are run for
    `choice_methods` (default: all methods). In the summary a method fitted on
    suggested labels is named "METHOD (STRATEGY)".
    """
    backbone, _ = load_pretrained(backbone)
    image_set = as_image_set(images, ids)
    per_row = align_labels(image_set, labels)
    pool = {i: c for i, c in zip(image_set.ids, per_row) if c is not None}
    fit_set, test_set, test_truth = image_set, None, None
    if test_labels:
        pool = {i: c for i, c in pool.items() if i not in test_labels}
        is_test = np.array([i in test_labels for i in image_set.ids])
        fit_set = _subset(image_set, np.flatnonzero(~is_test))
        test_set = _subset(image_set, np.flatnonzero(is_test))
        test_truth = np.array([test_labels[i] for i in test_set.ids], dtype=object)
    base = replace(options or ClassifierOptions(), validate=False,
                   predict_unlabelled=test_set is None)
    unknown = [c for c in choices if c not in CHOICES]
    if unknown:
        raise ValueError(f"unknown label choice {unknown[0]!r}; choose from {', '.join(CHOICES)}")
    embedding = app_features = None
    if "app" in choices:
        # what the Inspect page hands the Label page: pooled features, mirror-averaged
        mirrored = cached_features(backbone, fit_set, batch_size=base.batch_size,
                                   device=pick_device(base.device), augment_average=True,
                                   cancel=cancel)
        app_features = {i: mirrored[r] for r, i in enumerate(fit_set.ids)}
    if any(c in ("kcenter", "kmeans") for c in choices):
        from sslstudio.train.downstream.propagate import embed

        feats = cached_features(backbone, fit_set, batch_size=base.batch_size,
                                device=pick_device(base.device), cancel=cancel)
        z = embed(feats)
        embedding = {i: z[r] for r, i in enumerate(fit_set.ids)}
    n_classes = len(set(pool.values()))
    plan = []
    for level in levels:
        for seed in seeds:
            for choice in choices:
                ms = methods if choice == "random" else (choice_methods or methods)
                plan.append((level, seed, choice, [m for m in ms]))
    rows, skipped = [], []
    total = sum(len(ms) for *_, ms in plan)
    done = 0
    for level, seed, choice, ms in plan:
        if choice == "random":
            train = _draw(pool, level, seed)
        elif choice == "uniform":
            train = _uniform(pool, level * n_classes, seed)
        elif choice == "app":
            train = _app_rounds(pool, app_features, level * n_classes, seed, SUGGEST_COUNT)
        else:
            train = _suggested(pool, embedding, level * n_classes, choice, seed)
        if train is None:
            if level not in skipped:
                skipped.append(level)
            done += len(ms)
            continue
        for method in ms:
            check_cancel(cancel)
            started = time.perf_counter()
            result = fit_classifier(backbone, fit_set, train, method, replace(base, seed=seed),
                                    cancel=cancel)
            if test_set is not None:
                probs = _test_probs(result, backbone, test_set, base)
                pred = np.array([result.classes[int(k)] for k in probs.argmax(1)], dtype=object)
                true = test_truth
            else:
                truth = {i: c for i, c in pool.items() if i not in train}
                predicted = {p.id: p.label for p in result.predictions}
                scored = [i for i in truth if i in predicted]
                true = np.array([truth[i] for i in scored], dtype=object)
                pred = np.array([predicted[i] for i in scored], dtype=object)
            scored_any = len(true) > 0
            rows.append({"method": method if choice == "random" else f"{method} ({choice})",
                         "base_method": method, "choice": choice, "per_class": level,
                         "seed": seed,
                         "accuracy": float(np.mean(true == pred)) if scored_any else None,
                         "balanced_accuracy": (balanced_accuracy(true, pred) if scored_any
                                               else None),
                         "n_train": len(train), "train_classes": len(set(train.values())),
                         "n_test": int(len(true)),
                         "seconds": round(time.perf_counter() - started, 3)})
            if "teacher_probe_share" in result.info:     # what selftrain's teacher blended
                rows[-1]["teacher_probe_share"] = result.info["teacher_probe_share"]
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
    width = max(15, *(len(m) for m in methods))
    lines = ["labels/class | " + " | ".join(f"{m:>{width}}" for m in methods)]
    lines.append("-" * len(lines[0]))
    for level in levels:
        parts = []
        for m in methods:
            r = cell.get((m, level))
            parts.append(f"{r['mean']:6.1%} ± {r['std']:5.1%}".rjust(width) if r
                         else f"{'-':>{width}}")
        lines.append(f"{level:>12} | " + " | ".join(parts))
    return "\n".join(lines)


def format_markdown(summary: list[dict], methods: tuple[str, ...] | None = None) -> str:
    """The same table in Markdown."""
    methods = list(methods or dict.fromkeys(r["method"] for r in summary))
    levels = sorted({r["per_class"] for r in summary})
    cell = {(r["method"], r["per_class"]): r for r in summary}
    lines = ["| labels/class | " + " | ".join(methods) + " |",
             "| ---: | " + " | ".join("---:" for _ in methods) + " |"]
    for level in levels:
        parts = [f"{cell[(m, level)]['mean']:.1%} ± {cell[(m, level)]['std']:.1%}"
                 if (m, level) in cell else "-" for m in methods]
        lines.append(f"| {level} | " + " | ".join(parts) + " |")
    return "\n".join(lines)
