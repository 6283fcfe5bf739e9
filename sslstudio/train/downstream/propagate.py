"""Label propagation over the kNN graph of the frozen embeddings, then a linear head.

The few labels spread along the data's own neighbourhood structure (Zhou et
al., "Learning with local and global consistency", 2004, with the sparse
mutual-kNN graph and class balancing of Iscen et al., 2019):

1. embed: the frozen features, standardised per dimension and L2-normalised,
   so cosine similarity compares directions without one loud dimension
   dominating;
2. graph: each image's k most similar images, weights sim^γ (γ sharpens,
   so a far neighbour counts little), made symmetric, normalised
   S = D^-½ W D^-½;
3. diffuse: F = (I − αS)⁻¹ Y by a few dozen fixed-point steps, with each
   class's labels starting at total mass 1 (a class with more labels does
   not flood the graph), then each class column rescaled to equal mass;
4. a linear head (softmax regression) is fitted on every image with its
   propagated label, weighted by how certain the propagation is (1 − entropy /
   log K), the real labels weighted fully. The head, not the graph, is the
   model: export and predict see an ordinary linear classifier, and new images
   need no graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sslstudio.project.suggest import standardise
from sslstudio.train.downstream.inputs import CancelFn, check_cancel


@dataclass
class PropagationSettings:
    k: int = 5                  # neighbours per image in the graph (5 measured best of 5, 10, 20)
    alpha: float = 0.99         # how far labels travel (0: stay put, →1: whole graph)
    gamma: float = 3.0          # similarity sharpening
    iterations: int = 40
    head_C: float = 1.0         # regularisation of the final softmax regression
    min_certainty: float = 0.0  # images less certain than this are left out of the head
    label_weight: float = 1.0   # weight of a real label in the head, relative to a certain
                                # propagated one


def embed(feats: np.ndarray) -> np.ndarray:
    """Standardise each dimension, then L2-normalise each row (float32)."""
    x = standardise(feats)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x.astype(np.float32)


def knn_graph(z: np.ndarray, k: int, gamma: float, chunk: int = 1024, cancel=None):
    """Symmetric normalised sparse affinity D^-½ W D^-½ of the k-nearest-neighbour graph."""
    from scipy import sparse

    n = len(z)
    k = int(max(1, min(k, n - 1)))
    rows, cols, vals = [], [], []
    for start in range(0, n, chunk):
        check_cancel(cancel)
        sims = z[start:start + chunk] @ z.T
        block = np.arange(start, min(n, start + chunk))
        sims[block - start, block] = -np.inf                   # no self loops
        idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top = np.take_along_axis(sims, idx, axis=1)
        rows.append(np.repeat(block, k))
        cols.append(idx.ravel())
        vals.append(np.clip(top, 0.0, None).ravel() ** gamma)
    w = sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(n, n))
    w = w + w.T
    degree = np.asarray(w.sum(axis=1)).ravel()
    inv = 1.0 / np.sqrt(np.maximum(degree, 1e-12))
    d = sparse.diags(inv)
    return (d @ w @ d).tocsr()


def propagate(z: np.ndarray, labelled: np.ndarray, y_idx: np.ndarray, n_classes: int,
              settings: PropagationSettings | None = None, cancel: CancelFn | None = None,
              graph=None) -> np.ndarray:
    """N×K propagated class scores (rows sum to 1) for every image.

    labelled: row numbers of the labelled images in z; y_idx their classes.
    """
    s = settings or PropagationSettings()
    n = len(z)
    if graph is None:
        graph = knn_graph(z, s.k, s.gamma, cancel=cancel)
    seeds = np.zeros((n, n_classes))
    counts = np.bincount(y_idx, minlength=n_classes).astype(float)
    seeds[labelled, y_idx] = 1.0 / np.maximum(counts[y_idx], 1.0)
    f = seeds.copy()
    for i in range(s.iterations):
        if i % 10 == 0:
            check_cancel(cancel)
        f = s.alpha * (graph @ f) + (1 - s.alpha) * seeds
    f = np.clip(f, 0.0, None)
    present = counts > 0
    mass = f.sum(axis=0)
    f[:, present] /= np.maximum(mass[present], 1e-300)          # every class the same mass
    f[:, ~present] = 0.0
    total = f.sum(axis=1, keepdims=True)
    isolated = total[:, 0] <= 0
    f = np.where(isolated[:, None], present / max(1, present.sum()), f / np.maximum(total, 1e-300))
    f[labelled] = 0.0
    f[labelled, y_idx] = 1.0                                   # a given label is the truth
    return f


def certainty(probs: np.ndarray) -> np.ndarray:
    """1 − entropy / log K per row: 1 for a one-hot row, 0 for a uniform one."""
    k = probs.shape[1]
    if k < 2:
        return np.ones(len(probs))
    p = np.clip(probs, 1e-12, 1.0)
    return 1.0 - (-(p * np.log(p)).sum(axis=1)) / np.log(k)


def fit_head(feats: np.ndarray, labelled: np.ndarray, y_idx: np.ndarray, n_classes: int,
             settings: PropagationSettings | None = None, cancel: CancelFn | None = None,
             z: np.ndarray | None = None, graph=None):
    """(LinearProbe fitted on all images with their propagated labels, propagated scores)."""
    from sslstudio.train.downstream.linear_probe import LinearProbe

    s = settings or PropagationSettings()
    z = embed(feats) if z is None else z
    scores = propagate(z, labelled, y_idx, n_classes, s, cancel, graph=graph)
    check_cancel(cancel)
    pseudo = scores.argmax(axis=1)
    weight = certainty(scores)
    weight[labelled] = s.label_weight
    keep = weight > s.min_certainty
    keep[labelled] = True
    probe = LinearProbe(s.head_C, n_classes, class_weight=None).fit(
        feats[keep], pseudo[keep], sample_weight=_balanced(pseudo[keep], weight[keep], n_classes))
    return probe, scores


def _balanced(y: np.ndarray, weight: np.ndarray, n_classes: int) -> np.ndarray:
    """Sample weights rescaled so each class carries the same total weight."""
    totals = np.bincount(y, weights=weight, minlength=n_classes)
    present = totals > 0
    scale = np.zeros(n_classes)
    scale[present] = weight.sum() / (present.sum() * totals[present])
    return weight * scale[y]


def out_of_fold(feats: np.ndarray, labelled: np.ndarray, y_idx: np.ndarray, folds,
                n_classes: int, settings: PropagationSettings | None = None,
                cancel: CancelFn | None = None) -> np.ndarray:
    """Probabilities for each validated labelled row from a propagation + head that never saw
    its label (its image stays in the graph as an unlabelled one)."""
    z = embed(feats)
    probs = np.zeros((len(y_idx), n_classes))
    for train, val in folds:
        check_cancel(cancel)
        probe, _ = fit_head(feats, labelled[train], y_idx[train], n_classes, settings, cancel, z=z)
        probs[val] = probe.predict_proba(feats[labelled[val]])
    return probs
