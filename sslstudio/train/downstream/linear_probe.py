"""Linear probing: standardised frozen features → multinomial logistic regression.

C (inverse regularisation) is chosen on the validation folds; classes are
weighted 'balanced' so a rare class is not drowned by a common one. The fitted
scaler + regression fold into one nn.Linear (see model.linear_head_from_sklearn).
"""

from __future__ import annotations

import warnings

import numpy as np

C_GRID = (0.01, 0.1, 1.0, 10.0)
# lbfgs settings: tight enough that predictions no longer change, loose enough for seconds
# on thousands of images (a 1e-4 tolerance costs several times more for no accuracy).
MAX_ITER = 500
TOL = 1e-3


def single_threaded_blas():
    """These small problems run 5-10× faster on one BLAS thread than on many competing ones."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


class _Constant:
    """Stands in for a regression when a training split holds a single class."""

    def __init__(self, cls: int, n_classes: int) -> None:
        self.cls, self.n_classes = cls, n_classes

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        out = np.zeros((len(x), self.n_classes))
        out[:, self.cls] = 1.0
        return out


class LinearProbe:
    """StandardScaler + LogisticRegression on features; predict_proba over all n_classes."""

    def __init__(self, C: float, n_classes: int, max_iter: int = MAX_ITER, *,
                 class_weight: str | None = "balanced", standardise: bool = True) -> None:
        self.C, self.n_classes, self.max_iter = C, n_classes, max_iter
        self.class_weight, self.standardise = class_weight, standardise
        self.scaler = self.logistic = None

    def fit(self, x: np.ndarray, y_idx: np.ndarray,
            sample_weight: np.ndarray | None = None) -> "LinearProbe":
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        self.scaler = StandardScaler(with_mean=self.standardise, with_std=self.standardise).fit(x)
        if not self.standardise:
            self.scaler.mean_ = np.zeros(x.shape[1])
            self.scaler.scale_ = np.ones(x.shape[1])
        if len(np.unique(y_idx)) < 2:
            self.logistic = _Constant(int(y_idx[0]), self.n_classes)
            return self
        self.logistic = LogisticRegression(C=self.C, class_weight=self.class_weight,
                                           max_iter=self.max_iter, tol=TOL)
        with single_threaded_blas(), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.logistic.fit(self.scaler.transform(x), y_idx, sample_weight=sample_weight)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        probs = self.logistic.predict_proba(self.scaler.transform(x))
        if isinstance(self.logistic, _Constant):
            return probs
        full = np.zeros((len(x), self.n_classes))
        full[:, self.logistic.classes_] = probs
        return full

    def torch_head(self):
        from torch import nn
        import torch

        from sslstudio.train.downstream.model import linear_head_from_sklearn

        if isinstance(self.logistic, _Constant):
            head = nn.Linear(len(self.scaler.mean_), self.n_classes)
            with torch.no_grad():
                head.weight.zero_()
                head.bias.fill_(-1e4)
                head.bias[self.logistic.cls] = 0.0
            return head
        return linear_head_from_sklearn(self.scaler, self.logistic, self.n_classes)


def out_of_fold(feats: np.ndarray, y_idx: np.ndarray, folds, n_classes: int,
                c_grid, cancel=None) -> list[np.ndarray]:
    """Per C: probabilities for each validated row from probes that did not see it.

    Within a fold the C values are fitted in increasing order, each starting
    from the previous solution (warm start), which makes the whole path cost
    little more than one fit.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from sslstudio.train.downstream.inputs import check_cancel

    order = np.argsort(c_grid)
    probs = [np.zeros((len(y_idx), n_classes)) for _ in c_grid]
    for train, val in folds:
        check_cancel(cancel)
        scaler = StandardScaler().fit(feats[train])
        x_train, x_val = scaler.transform(feats[train]), scaler.transform(feats[val])
        present = np.unique(y_idx[train])
        if len(present) < 2:
            for p in probs:
                p[val, present[0]] = 1.0
            continue
        logistic = LogisticRegression(class_weight="balanced", max_iter=MAX_ITER, tol=TOL,
                                      warm_start=True)
        for j in order:
            logistic.set_params(C=float(c_grid[j]))
            with single_threaded_blas(), warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                logistic.fit(x_train, y_idx[train])
            probs[j][np.ix_(val, logistic.classes_)] = logistic.predict_proba(x_val)
    return probs
