"""Classification metrics from true and predicted class indices (no training figures here)."""

from __future__ import annotations

import numpy as np


def confusion_matrix(true: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows = true class, columns = predicted class."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(true, int), np.asarray(pred, int)), 1)
    return matrix


def accuracy_interval(correct: int, n: int,
                      confidence: float = 0.95) -> tuple[float, float] | None:
    """Where the true accuracy lies (Wilson score interval) when ``correct`` of ``n``
    validated images were right. With a few labels the figure alone misleads: 12 of 12
    right still allows 76%."""
    if n <= 0:
        return None
    from scipy.stats import binomtest   # here: the first import takes 1-2 s

    ci = binomtest(int(correct), int(n)).proportion_ci(confidence_level=confidence,
                                                       method="wilson")
    return float(ci.low), float(ci.high)


def classification_report(true, pred, classes: list[str]) -> dict:
    """Accuracy, balanced accuracy (mean recall over classes present), per-class P/R, confusion.

    A JSON-able dict. Classes absent from `true` have recall None and are left
    out of the balanced accuracy.
    """
    true = np.asarray(true, int)
    pred = np.asarray(pred, int)
    matrix = confusion_matrix(true, pred, len(classes))
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    diag = np.diag(matrix)
    per_class = {}
    recalls = []
    for i, name in enumerate(classes):
        recall = float(diag[i] / support[i]) if support[i] else None
        precision = float(diag[i] / predicted[i]) if predicted[i] else None
        if recall is not None:
            recalls.append(recall)
        per_class[name] = {"precision": precision, "recall": recall, "support": int(support[i])}
    n = int(len(true))
    interval = accuracy_interval(int(diag.sum()), n)
    return {
        "n": n,
        "accuracy": float(diag.sum() / n) if n else None,
        "accuracy_interval": list(interval) if interval else None,   # 95%
        "balanced_accuracy": float(np.mean(recalls)) if recalls else None,
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
        "classes": list(classes),
    }


def interval_text(report: dict) -> str:
    """' (95% interval 76–100%)' for a report that has one, else ''."""
    interval = report.get("accuracy_interval")
    if not interval:
        return ""
    return f" (95% interval {interval[0] * 100:.0f}–{interval[1]:.0%})"


def format_report(report: dict) -> str:
    """A plain-text table for the terminal."""
    if not report or not report.get("n"):
        return "no validation figures (not enough labels)"
    lines = [f"accuracy {report['accuracy']:.1%}{interval_text(report)}   balanced accuracy "
             f"{report['balanced_accuracy']:.1%}   ({report['n']} images)"]
    width = max(8, *(len(c) for c in report["classes"]))
    lines.append(f"{'class':<{width}}  precision  recall  support")

    def pct(v):
        return "      -" if v is None else f"{v:7.1%}"

    for name, row in report["per_class"].items():
        lines.append(f"{name:<{width}}    {pct(row['precision'])}  {pct(row['recall'])}  "
                     f"{row['support']:7d}")
    lines.append("confusion matrix (rows = true, columns = predicted):")
    short = [c[:6] for c in report["classes"]]
    lines.append(" " * (width + 2) + " ".join(f"{s:>6}" for s in short))
    for name, row in zip(report["classes"], report["confusion_matrix"]):
        lines.append(f"{name:<{width}}  " + " ".join(f"{v:6d}" for v in row))
    return "\n".join(lines)
