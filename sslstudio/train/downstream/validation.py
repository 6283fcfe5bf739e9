"""How to validate a classifier honestly when there are only a few labels.

The scheme is chosen from the label counts: leave-one-out for tiny sets,
stratified k-fold otherwise (k = min(5, smallest class count)). Classes with a
single label stay in every training split but are never validated (their one
image cannot be both training and test data). Every labelled image outside
those classes is predicted exactly once by a model that never saw it, so the
reported accuracy is never training accuracy.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

LEAVE_ONE_OUT_MAX = 30  # validatable labels up to which leave-one-out is affordable and steadier
MAX_FOLDS = 5


@dataclass
class ValidationPlan:
    scheme: str                                   # "leave-one-out", "stratified 5-fold", "none"
    folds: list[tuple[np.ndarray, np.ndarray]]    # (train rows, validation rows) into y
    unvalidated_classes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def validated_rows(self) -> np.ndarray:
        if not self.folds:
            return np.zeros(0, dtype=int)
        return np.sort(np.concatenate([val for _, val in self.folds]))


def plan_validation(y: list[str] | np.ndarray, *, seed: int = 0,
                    max_folds: int = MAX_FOLDS,
                    leave_one_out_max: int = LEAVE_ONE_OUT_MAX) -> ValidationPlan:
    """Split labelled rows (y = class name per row) into honest validation folds."""
    y = np.asarray(y, dtype=object)
    counts = Counter(y.tolist())
    singles = sorted(c for c, n in counts.items() if n < 2)
    notes = [f"class '{c}' has a single label: used for training, not validated "
             f"(label one more image to validate it)" for c in singles]
    rows = np.flatnonzero(~np.isin(y, singles)) if singles else np.arange(len(y))
    always_train = np.flatnonzero(np.isin(y, singles)) if singles else np.zeros(0, dtype=int)
    validatable = {c: n for c, n in counts.items() if n >= 2}
    if len(validatable) == 0 or len(counts) < 2:
        notes.append("not enough labels to validate: at least two classes and one class with "
                     "two or more labels are needed")
        return ValidationPlan("none", [], singles, notes)

    if len(rows) <= leave_one_out_max:
        folds = []
        for r in rows:
            train = np.concatenate([np.delete(rows, np.searchsorted(rows, r)), always_train])
            folds.append((np.sort(train), np.array([r])))
        return ValidationPlan("leave-one-out", folds, singles, notes)

    from sklearn.model_selection import StratifiedKFold

    k = int(min(max_folds, min(validatable.values())))
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    folds = []
    for train_idx, val_idx in splitter.split(np.zeros(len(rows)), y[rows].astype(str)):
        train = np.sort(np.concatenate([rows[train_idx], always_train]))
        folds.append((train, np.sort(rows[val_idx])))
    return ValidationPlan(f"stratified {k}-fold", folds, singles, notes)


def balanced_class_weights(y_idx: np.ndarray, n_classes: int) -> np.ndarray:
    """n / (K · count) per class, like sklearn's 'balanced'; absent classes get 0."""
    counts = np.bincount(y_idx, minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights
