"""Choosing a hyperparameter (C, k, epochs) from validation folds without flattering the score.

Each candidate has out-of-fold probabilities for every validated row. The
final model uses the candidate that scores best over all folds. The reported
figures are honest: the rows of fold i are scored with the candidate that won
on the *other* folds, so no validation row helped choose its own setting.
"""

from __future__ import annotations

import numpy as np


def balanced_accuracy(true: np.ndarray, pred: np.ndarray) -> float:
    recalls = [np.mean(pred[true == c] == c) for c in np.unique(true)]
    return float(np.mean(recalls)) if recalls else 0.0


def score(probs: np.ndarray, true: np.ndarray) -> float:
    """Balanced accuracy, ties broken by the mean log-probability of the true class."""
    pred = probs.argmax(axis=1)
    log_p = np.log(np.clip(probs[np.arange(len(true)), true], 1e-12, 1.0)).mean()
    return balanced_accuracy(true, pred) + 1e-4 * float(log_p)


def select(candidates: list, oof_probs: list[np.ndarray], y_idx: np.ndarray,
           folds: list[tuple[np.ndarray, np.ndarray]]) -> tuple[object, np.ndarray]:
    """(best candidate overall, honest out-of-fold probabilities N×K for the validated rows).

    oof_probs[j][row] are candidate j's probabilities for a validated row (rows
    that are never validated may hold anything); the returned array is NaN there.
    """
    validated = np.concatenate([val for _, val in folds])
    scores = [score(p[validated], y_idx[validated]) for p in oof_probs]
    best = int(np.argmax(scores))
    honest = np.full_like(oof_probs[0], np.nan)
    for i, (_, val) in enumerate(folds):
        others = np.concatenate([v for j, (_, v) in enumerate(folds) if j != i]) \
            if len(folds) > 1 else val
        fold_scores = [score(p[others], y_idx[others]) for p in oof_probs]
        honest[val] = oof_probs[int(np.argmax(fold_scores))][val]
    return candidates[best], honest
