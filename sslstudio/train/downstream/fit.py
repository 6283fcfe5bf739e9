"""fit_classifier: one entry point for every way of turning labels into a classifier."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sslstudio.plural import count
from sslstudio.train.device import flush_denormals
from sslstudio.train.downstream import handedness, knn, linear_probe, propagate, selftrain, semi
from sslstudio.train.downstream.features import cached_features
from sslstudio.train.downstream.finetune import TrainSettings, predict_probs, train_with_validation
from sslstudio.train.downstream.inputs import (CancelFn, ProgressFn, align_labels, as_image_set,
                                               check_cancel)
from sslstudio.train.downstream.metrics import classification_report
from sslstudio.train.downstream.model import ClassifierModel
from sslstudio.train.downstream.selection import select
from sslstudio.train.downstream.validation import plan_validation

METHODS = ("linear", "semi", "propagate", "selftrain", "partial", "finetune", "scratch", "knn")
FEATURE_METHODS = ("linear", "knn", "semi", "propagate")
# feature methods that fit a head without an optimizer: seconds, no network training (the
# app runs these in a thread rather than a process)
HEAD_ONLY_METHODS = ("linear", "knn", "propagate")
# methods that also learn from the unlabelled images (their validation reruns the whole fit
# per fold, so they use k-fold rather than leave-one-out)
TRANSDUCTIVE_METHODS = ("semi", "propagate", "selftrain")
# selftrain trains the whole network once per validation fold: it validates on this many of
# the k folds (the rest of the labels are never scored)
SELFTRAIN_VALIDATION_FOLDS = 1
# ... and trains that fold's network for this share of the final fit's steps: a quarter off
# the whole fit's time, and the fold's test accuracy came out 0.5 points lower on MNIST
# (docs/benchmarks-classifier.md, "selftrain's validation fold at half length")
SELFTRAIN_FOLD_SHARE = 0.5


def _share_text(share: float) -> str:
    """How the validation scheme names a fold network's length: 'half as long', '30% as long'."""
    return {1.0: "just", 0.5: "half", 0.25: "a quarter"}.get(share, f"{share:.0%}") + " as long"


@dataclass
class ClassifierOptions:
    seed: int = 0
    device: str | None = None                 # None: the best available
    batch_size: int = 64
    # average features with the mirror image (the model keeps doing so after export) and
    # train on mirrored views; None = on unless the images have a handedness, like text and
    # digits (handedness.py). False for classes that are mirror images of each other (b / d,
    # left / right arrows).
    augment_average: bool | None = None
    feature_cache_dir: str | None = None      # keep extracted features as .npy here
    c_grid: tuple[float, ...] = linear_probe.C_GRID
    k_grid: tuple[int, ...] = knn.K_GRID
    epochs: int = 30                          # partial / finetune / scratch
    lr: float = 1e-3
    backbone_lr_factor: float = 0.1
    weight_decay: float = 1e-4
    trainable_stages: int = 1
    patience: int = 5
    augment: bool = True
    # partial/finetune/scratch: False skips the validation folds (no figures, a fixed number
    # of epochs) — for benchmarks that measure on their own test images.
    validate: bool = True
    # False: skip predicting the unlabelled images (result.predictions stays empty) — for
    # benchmarks that score the model on their own test images
    predict_unlabelled: bool = True
    semi: semi.SemiSettings = field(default_factory=semi.SemiSettings)
    propagation: propagate.PropagationSettings = field(
        default_factory=propagate.PropagationSettings)
    selftrain: selftrain.SelfTrainSettings = field(default_factory=selftrain.SelfTrainSettings)


@dataclass
class Prediction:
    id: str
    label: str
    confidence: float
    probabilities: list[float]


@dataclass
class ClassifierResult:
    model: ClassifierModel
    classes: list[str]
    method: str
    metrics: dict                                   # validation only, never training figures
    validation_truth: dict[str, str] = field(default_factory=dict)
    validation_predictions: dict[str, str] = field(default_factory=dict)
    misclassified: list[dict] = field(default_factory=list)   # most confidently wrong first
    predictions: list[Prediction] = field(default_factory=list)  # unlabeled, least confident first
    info: dict = field(default_factory=dict)        # chosen settings, timings, backbone config


def pick_device(requested: str | None) -> str:
    if requested:
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def load_pretrained(source) -> tuple[nn.Module, dict]:
    """A Backbone, or a run folder / path stem holding backbone.safetensors + backbone.json."""
    if isinstance(source, nn.Module):
        config = getattr(source, "config", None)
        return source, dict((config() if callable(config) else config) or {})
    path = Path(source)
    stem = path / "backbone" if path.is_dir() else path.with_suffix("")
    if not stem.with_suffix(".safetensors").is_file():
        raise FileNotFoundError(f"no pretrained backbone in {path} "
                                f"(expected {stem.with_suffix('.safetensors').name})")
    from sslstudio.models.io import load_backbone

    backbone, config = load_backbone(stem)
    config = dict(config or {})
    run_config = stem.parent / "config.json"
    if run_config.is_file() and "pretext" not in config:
        import json
        try:
            run = json.loads(run_config.read_text(encoding="utf-8"))
            task = run.get("task") or run.get("pretext") or run.get("pretext_task")
            if task:
                config["pretext"] = task
        except (OSError, ValueError):
            pass
    config.setdefault("source", str(stem))
    return backbone, config


def _reinitialise(module: nn.Module, seed: int) -> nn.Module:
    """Same architecture, fresh random weights (the from-scratch baseline)."""
    torch.manual_seed(seed)
    for m in module.modules():
        if m is not module and hasattr(m, "reset_parameters"):
            m.reset_parameters()
    return module


def fold_settings(settings: selftrain.SelfTrainSettings,
                  share: float = SELFTRAIN_FOLD_SHARE) -> selftrain.SelfTrainSettings:
    """selftrain's settings for a validation fold: ``share`` of the steps."""
    return replace(settings, epochs=settings.epochs * share,
                   max_steps=max(settings.min_steps, round(settings.max_steps * share)))


def _import_slow_modules(method: str) -> None:
    """Import now, before the progress bar moves, what the fit would first import midway.

    scikit-learn (every method but scratch fits a probe) and the modules torch loads when
    its first optimizer is made take 1-2 s each on a small CPU. Midway they stall the bar,
    and a time-left estimate read from the bar's speed came out 1.8× too long (the sample,
    selftrain); before the bar starts they cost the same and mislead nobody.
    """
    if method != "scratch":
        import sklearn.linear_model  # noqa: F401
    import scipy.stats  # noqa: F401 - the report's accuracy interval (sklearn brings it too)
    if method not in HEAD_ONLY_METHODS:
        torch.optim.AdamW([torch.zeros(1, requires_grad=True)])


def fit_classifier(backbone, images, labels, method: str = "linear",
                   options: ClassifierOptions | None = None, *, ids=None,
                   progress: ProgressFn | None = None,
                   cancel: CancelFn | None = None) -> ClassifierResult:
    """Fit a classifier from a pretrained backbone and a few labels, validated honestly.

    backbone: a Backbone, or a run folder / path stem with backbone.safetensors.
    images:   N×S×S×3 uint8 array (with optional ids), a DecodedCache, or
              (DecodedCache, relpaths).
    labels:   id → class mapping, or a sequence aligned with the images (None = unlabeled).
    method:   linear | semi | propagate | partial | finetune | scratch | knn.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    opts = options or ClassifierOptions()
    started = time.perf_counter()
    flush_denormals()
    backbone, backbone_config = load_pretrained(backbone)
    image_set = as_image_set(images, ids)
    per_row = align_labels(image_set, labels)
    labelled = np.array([i for i, c in enumerate(per_row) if c is not None], dtype=int)
    classes = sorted({per_row[i] for i in labelled})
    if len(classes) < 2:
        raise ValueError(f"a classifier needs labels from at least two classes (got "
                         f"{count(len(labelled), 'label')} in {count(len(classes), 'class')})")
    index = {c: i for i, c in enumerate(classes)}
    y_idx = np.array([index[per_row[i]] for i in labelled], dtype=np.int64)
    y_names = [per_row[i] for i in labelled]
    device = pick_device(opts.device)
    loo_max = 30 if method in FEATURE_METHODS and method not in TRANSDUCTIVE_METHODS else 0
    plan = plan_validation(y_names, seed=opts.seed, leave_one_out_max=loo_max)
    n_classes = len(classes)
    if not opts.validate and (method not in FEATURE_METHODS or method in TRANSDUCTIVE_METHODS):
        plan.folds = []
        plan.scheme = "none (validation switched off)"
    info: dict = {"method": method, "validation": plan.scheme, "n_labels": int(len(labelled)),
                  "n_images": len(image_set), "device": device}

    needs_features = method != "scratch"
    _import_slow_modules(method)
    # Mirror-averaged features measured better for every feature method with few labels on
    # glyphs (docs/benchmarks-classifier.md), and worse on handwriting and print, which the
    # default leaves unmirrored (handedness.py). augment_average=False (classes that are
    # mirror images of each other) also keeps every training view unmirrored.
    # partial/finetune never average: they start from a probe on plain features.
    if opts.augment_average is None:
        mirror, handed_note = handedness.decide_mirror(image_set, opts.seed)
    else:
        mirror, handed_note = bool(opts.augment_average), None
    info["mirror"] = mirror
    if handed_note:
        plan.notes.append(handed_note)
    flip = mirror and (method in FEATURE_METHODS or method == "selftrain")
    feats = None
    if method == "selftrain" and len(plan.folds) > SELFTRAIN_VALIDATION_FOLDS:
        kept = plan.folds[:SELFTRAIN_VALIDATION_FOLDS]
        held = sum(len(v) for _, v in kept)
        plan.scheme = (f"{plan.scheme}, {len(kept)} fold scored ({held} of {len(labelled)} "
                       f"labels held out, on a network trained "
                       f"{_share_text(SELFTRAIN_FOLD_SHARE)} as the final one: training the "
                       f"network per fold is slow)")
        plan.folds = kept
    n_stages = {"semi": 3, "selftrain": 2 + len(plan.folds)}.get(method, 2)
    # Each stage's share of the bar, in image passes through the backbone, so that the time
    # left read from the bar's speed holds across stages. Measured on the sample (2,400
    # images, 32 px, 2 CPU cores): linear's features 3.1 s and its fit 0.2 s; propagate's
    # graph 0.7 s; semi's features 3.1 s, strong views 4.3 s and head 5.9 s.
    feature_passes = len(image_set) * (2 if flip else 1)
    weights = {"linear": [feature_passes, 0.1 * feature_passes],
               "knn": [feature_passes, 0.1 * feature_passes],
               "propagate": [feature_passes, 0.25 * feature_passes],
               "semi": [feature_passes] + [max(1, opts.semi.strong_views) * len(image_set)] * 2,
               }.get(method)
    if method == "selftrain":   # the features take seconds, each training minutes
        unlabelled = len(image_set) - len(labelled)
        weights = ([feature_passes]
                   + [selftrain.image_passes(unlabelled, fold_settings(opts.selftrain))]
                   * len(plan.folds)
                   + [selftrain.image_passes(unlabelled, opts.selftrain)])
    stages = _Stages(progress, n_stages, weights=weights)
    if needs_features:
        feats = cached_features(backbone, image_set, cache_dir=opts.feature_cache_dir,
                                batch_size=opts.batch_size, device=device,
                                augment_average=flip,
                                progress=(stages.stage(0) if method in FEATURE_METHODS
                                          or method == "selftrain" else None),
                                cancel=cancel)
    check_cancel(cancel)
    folds = plan.folds

    if method == "linear":
        x = feats[labelled]
        if folds:
            oof = linear_probe.out_of_fold(x, y_idx, folds, n_classes, opts.c_grid, cancel)
            best_c, honest = select(list(opts.c_grid), oof, y_idx, folds)
        else:
            best_c, honest = 1.0, None
        probe = linear_probe.LinearProbe(best_c, n_classes).fit(x, y_idx)
        model = ClassifierModel(copy.deepcopy(backbone), probe.torch_head(), "linear",
                                flip_average=flip)
        info["C"] = best_c
    elif method == "semi":
        settings = replace(opts.semi, seed=opts.seed)
        strong = None
        if settings.strong_views > 0:
            strong = semi.strong_view_features(backbone, image_set, settings.strong_views,
                                               seed=0, batch_size=opts.batch_size,
                                               device=device, mirror=mirror,
                                               progress=stages.stage(1),
                                               cancel=cancel)
        tick = stages.stage(2)
        honest = None
        if folds:
            honest = semi.out_of_fold(feats, strong, labelled, y_idx, folds, n_classes,
                                      settings, cancel)
        tick(len(folds), len(folds) + 1)
        head = semi.SemiHead(n_classes, settings).fit(feats, strong, labelled, y_idx, cancel)
        tick(1, 1)
        model = ClassifierModel(copy.deepcopy(backbone), head.torch_head(), "linear",
                                flip_average=flip)
        info.update(head.info, threshold=settings.threshold, strong_views=settings.strong_views)
    elif method == "propagate":
        settings = opts.propagation
        tick = stages.stage(1)
        honest = None
        if folds:
            honest = propagate.out_of_fold(feats, labelled, y_idx, folds, n_classes, settings,
                                           cancel)
        tick(len(folds), len(folds) + 1)
        probe, scores = propagate.fit_head(feats, labelled, y_idx, n_classes, settings, cancel)
        tick(1, 1)
        model = ClassifierModel(copy.deepcopy(backbone), probe.torch_head(), "linear",
                                flip_average=flip)
        info.update(k=settings.k, alpha=settings.alpha,
                    mean_certainty=round(float(propagate.certainty(scores).mean()), 3))
    elif method == "selftrain":
        settings = replace(opts.selftrain, seed=opts.seed, mirror=mirror)
        honest = None
        z = propagate.embed(feats)
        if folds:
            honest = np.full((len(y_idx), n_classes), np.nan)
            for i, (train, val) in enumerate(folds):
                fold_model, _ = selftrain.self_train(
                    backbone, image_set, feats, labelled[train], y_idx[train], n_classes,
                    fold_settings(settings), device=device, propagation=opts.propagation, z=z,
                    progress=stages.stage(1 + i), cancel=cancel)
                honest[val] = predict_probs(fold_model, image_set, labelled[val], device)
                del fold_model
        model, trained = selftrain.self_train(
            backbone, image_set, feats, labelled, y_idx, n_classes, settings, device=device,
            propagation=opts.propagation, z=z, progress=stages.stage(1 + len(folds)),
            cancel=cancel)
        info.update(trained)
    elif method == "knn":
        x = feats[labelled]
        grid = [k for k in opts.k_grid if k <= len(labelled)] or [1]
        if folds:
            oof = [knn.out_of_fold(x, y_idx, folds, n_classes, k) for k in grid]
            best_k, honest = select(grid, oof, y_idx, folds)
        else:
            best_k, honest = min(5, len(labelled)), None
        model = ClassifierModel(copy.deepcopy(backbone), knn.knn_head(x, y_idx, n_classes, best_k),
                                "knn", flip_average=flip)
        info["k"] = best_k
    else:
        settings = TrainSettings(epochs=opts.epochs, lr=opts.lr,
                                 backbone_lr_factor=opts.backbone_lr_factor,
                                 weight_decay=opts.weight_decay,
                                 trainable_stages=opts.trainable_stages,
                                 batch_size=opts.batch_size, patience=opts.patience,
                                 augment=opts.augment, mirror=mirror, device=device,
                                 seed=opts.seed)

        def make_model(train_rows: np.ndarray) -> ClassifierModel:
            net = copy.deepcopy(backbone)
            if method == "scratch":
                _reinitialise(net, opts.seed)
                width = getattr(backbone, "num_features", None) or _feature_width(net, image_set)
                return ClassifierModel(net, nn.Linear(width, n_classes))
            probe = linear_probe.LinearProbe(1.0, n_classes).fit(
                feats[labelled[train_rows]], y_idx[train_rows])
            return ClassifierModel(net, probe.torch_head())

        model, honest, epochs, history = train_with_validation(
            make_model, image_set, labelled, y_idx, n_classes, method, folds, settings,
            progress=progress, cancel=cancel)
        info.update(epochs=epochs, validation_curve=history)
        if not folds:
            honest = None
    model = model.eval()  # still on the fit's device: the unlabelled images are predicted there
    result = ClassifierResult(model=model, classes=classes, method=method, metrics={}, info=info)
    _fill_validation(result, honest, plan, image_set.ids, labelled, y_idx)
    check_cancel(cancel)

    unlabeled = np.setdiff1d(np.arange(len(image_set)), labelled)
    if len(unlabeled) and opts.predict_unlabelled:
        if feats is not None and method in FEATURE_METHODS:
            model = model.cpu()
            with torch.no_grad():
                probs = model.head(torch.from_numpy(feats[unlabeled])).double()
                probs = probs.numpy() if method == "knn" else torch.softmax(probs, 1).numpy()
        else:
            probs = predict_probs(model, image_set, unlabeled, device)
        result.predictions = sorted(
            (Prediction(image_set.ids[r], classes[int(p.argmax())], float(p.max()),
                        [float(v) for v in p]) for r, p in zip(unlabeled, probs)),
            key=lambda pr: pr.confidence)
    result.model = model.cpu()
    info["backbone_config"] = backbone_config
    info["seconds"] = round(time.perf_counter() - started, 3)
    return result


class _Stages:
    """One progress bar over several stages of a fit: stage(i) gives stage i's callback.

    `weights` (default: equal) give each stage its share of the bar, in proportion to its
    expected time, so that a time-left estimate from the bar's speed holds across stages.
    """

    def __init__(self, progress: ProgressFn | None, n: int, scale: int = 1000,
                 weights: list[float] | None = None) -> None:
        self.progress, self.total = progress, scale * n
        weights = [float(w) for w in weights] if weights else [1.0] * n
        whole = sum(weights)
        self.starts = [sum(weights[:i]) / whole for i in range(n)]
        self.widths = [w / whole for w in weights]

    def stage(self, i: int):
        def report(done: int, total: int) -> None:
            if self.progress is not None and total > 0:
                share = self.starts[i] + self.widths[i] * min(1.0, done / total)
                self.progress(int(round(self.total * share)), self.total)
        return report


def _feature_width(backbone: nn.Module, image_set) -> int:
    with torch.no_grad():
        return int(backbone.eval()(image_set.tensor([0])).shape[1])


def _fill_validation(result: ClassifierResult, honest, plan, ids, labelled, y_idx) -> None:
    classes = result.classes
    metrics = {"scheme": plan.scheme, "notes": list(plan.notes),
               "unvalidated_classes": list(plan.unvalidated_classes)}
    if honest is None or not plan.folds:
        metrics.update(classification_report([], [], classes))
        result.metrics = metrics
        return
    rows = plan.validated_rows
    probs = honest[rows]
    pred = probs.argmax(axis=1)
    metrics.update(classification_report(y_idx[rows], pred, classes))
    result.metrics = metrics
    for r, p, pr in zip(rows, pred, probs):
        image_id = ids[labelled[r]]
        result.validation_truth[image_id] = classes[y_idx[r]]
        result.validation_predictions[image_id] = classes[p]
        if p != y_idx[r]:
            result.misclassified.append({"id": image_id, "true": classes[y_idx[r]],
                                         "predicted": classes[p], "confidence": float(pr.max())})
    result.misclassified.sort(key=lambda m: -m["confidence"])
