"""Label-free signals that pretraining is working, and kNN accuracy when some labels exist.

* effective rank (Roy & Vetterli 2007): exp of the entropy of the normalised
  singular values of the centred embeddings; ~1 when every image maps to the
  same direction (collapse), up to the dimension when the features spread out.
* per-dimension std of L2-normalised embeddings: a collapsed representation has
  std ~0 in (almost) every dimension; a healthy one ~1/sqrt(dim).
* leave-one-out kNN accuracy of frozen features on the labelled images (cosine
  similarity, similarity-weighted vote): leave-one-out is exact cross-validation
  and cheap for the few hundred labelled images of the quality sample.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _as_float64(embeddings) -> np.ndarray:
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be N×D, got shape {x.shape}")
    return x


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), eps)


def effective_rank(embeddings) -> float:
    x = _as_float64(embeddings)
    if len(x) < 2:
        return 1.0
    x = x - x.mean(axis=0, keepdims=True)
    singular = np.linalg.svd(x, compute_uv=False)
    total = singular.sum()
    if total <= 1e-12 * max(1.0, float(np.abs(x).max(initial=0.0))) or total == 0:
        return 1.0
    p = singular / total
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def feature_spread(embeddings) -> tuple[float, float]:
    """(min, mean) over dimensions of the std of L2-normalised embeddings."""
    x = l2_normalize(_as_float64(embeddings))
    std = x.std(axis=0)
    return float(std.min()), float(std.mean())


def knn_accuracy(embeddings, labels: Sequence, k: int = 10) -> float | None:
    """Leave-one-out kNN accuracy; None when fewer than 2 classes or 3 samples."""
    x = l2_normalize(_as_float64(embeddings))
    labels = np.asarray(labels)
    classes, y = np.unique(labels, return_inverse=True)
    if len(classes) < 2 or len(x) < 3:
        return None
    k = max(1, min(k, len(x) - 1))
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)  # leave the query itself out
    neighbours = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    weights = np.take_along_axis(sim, neighbours, axis=1)
    weights = np.exp(weights / 0.1)  # temperature-weighted vote, as in DINO's kNN eval
    votes = np.zeros((len(x), len(classes)))
    np.add.at(votes, (np.arange(len(x))[:, None], y[neighbours]), weights)
    return float((votes.argmax(axis=1) == y).mean())


def quality_report(embeddings, labels: Sequence | None = None) -> dict:
    """Every signal at once; ``labels`` aligns with the first len(labels) rows (None = unlabelled)."""
    x = _as_float64(embeddings)
    std_min, std_mean = feature_spread(x)
    report = {"effective_rank": effective_rank(x), "feature_std_min": std_min,
              "feature_std_mean": std_mean, "feature_dim": int(x.shape[1]),
              "sample_size": int(len(x))}
    if labels is not None:
        pairs = [(i, lab) for i, lab in enumerate(labels) if lab is not None]
        if pairs:
            idx = [i for i, _ in pairs]
            accuracy = knn_accuracy(x[idx], [lab for _, lab in pairs])
            if accuracy is not None:
                report["knn_accuracy"] = accuracy
                report["knn_labelled"] = len(idx)
    return report
