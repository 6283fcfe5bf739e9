"""Which images to label next (pure numpy; used by the Label page and usable from scripts).

Three strategies, best available first:

* ``least_confident``: once a classifier has predicted the unlabelled images,
  the ones it is least sure about teach it most;
* ``representative``: with an embedding, k-means on it and the image nearest the
  centre of each of the largest groups that hold no label yet: typical images of
  the main groups, then of the groups the labels have not reached (measured
  better than k-centre and than random picks, docs/benchmarks-classifier.md);
* ``k_center`` (kept for scripts): k-centre greedy picks images far from everything
  labelled or already picked, so a few labels cover the data;
* ``spread``: with nothing else, a random image from each of k equal slices of
  the sorted paths, so every folder and part of the set gets a turn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

# images per press of the Label page's "What to label next?"
SUGGEST_COUNT = 24


def spread_sample(relpaths: Sequence[str], k: int, seed: int = 0) -> list[str]:
    """k images, one drawn at random from each of k equal slices of the sorted list."""
    ordered = sorted(relpaths)
    n = len(ordered)
    if k >= n:
        return ordered
    if k <= 0:
        return []
    rng = np.random.default_rng(seed)
    edges = np.linspace(0, n, k + 1).astype(int)
    return [ordered[int(rng.integers(lo, hi))] for lo, hi in zip(edges[:-1], edges[1:])]


def k_center_greedy(features: np.ndarray, k: int, centers: Sequence[int] = (),
                    seed: int = 0) -> list[int]:
    """Indices of k rows chosen greedily to be farthest from all centres so far.

    `centers` are rows already covered (the labelled images). Features are
    L2-normalised first, so the distance compares directions, as embeddings
    are usually meant to be compared.
    """
    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"features must be N×D, got shape {x.shape}")
    n = len(x)
    k = min(k, n - len(set(centers)))
    if k <= 0:
        return []
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sq = np.einsum("ij,ij->i", x, x)
    min_dist = np.full(n, np.inf, dtype=np.float32)

    def cover(i: int) -> None:
        d = sq + sq[i] - 2.0 * (x @ x[i])
        np.minimum(min_dist, np.maximum(d, 0.0), out=min_dist)

    for c in centers:
        cover(int(c))
    chosen: list[int] = []
    if not len(centers):
        first = int(np.random.default_rng(seed).integers(n))
        chosen.append(first)
        cover(first)
    while len(chosen) < k:
        candidate = int(np.argmax(min_dist))
        if min_dist[candidate] <= 0.0:
            # everything left duplicates a centre: take the remaining rows in order
            taken = set(chosen) | {int(c) for c in centers}
            chosen.extend([i for i in range(n) if i not in taken][: k - len(chosen)])
            break
        chosen.append(candidate)
        cover(candidate)
    return chosen


def representative_sample(features: np.ndarray, k: int, seed: int = 0,
                          iterations: int = 20, covered: Sequence[int] = ()) -> list[int]:
    """k rows: the most typical image (`_most_typical`: in the densest part) of each of the k
    largest clusters of a k-means on the L2-normalised features that hold no `covered` row
    (the labelled images).

    A few labels on typical images of the data's main groups teach more than
    k-centre's picks, which favour outliers (measured in docs/benchmarks-classifier.md).
    k-means runs with as many clusters as there are labels after this round, plus
    a few, so that stray images form small clusters of their own, which are then
    passed over (TypiClust's idea, Hacohen et al. 2022).
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be N×D, got shape {x.shape}")
    n = len(x)
    covered = sorted({int(c) for c in covered})
    k = min(int(k), n - len(covered))
    if k <= 0:
        return []
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    m = min(n, len(covered) + k + max(1, k // 2))
    rng = np.random.default_rng(seed)
    # k-means++ seeding, then Lloyd iterations
    first = int(rng.integers(n))
    c = [x[first]]
    d2 = ((x - x[first]) ** 2).sum(1)
    for _ in range(1, m):
        total = d2.sum()
        i = int(rng.choice(n, p=d2 / total)) if total > 0 else int(rng.integers(n))
        c.append(x[i])
        d2 = np.minimum(d2, ((x - x[i]) ** 2).sum(1))
    c = np.stack(c)

    for _ in range(iterations):
        assign = np.argmin(_squared_distances(x, c), axis=1)
        for j in range(m):
            members = assign == j
            if members.any():
                c[j] = x[members].mean(0)
    dist = _squared_distances(x, c)
    assign = np.argmin(dist, axis=1)
    sizes = np.bincount(assign, minlength=m)
    sizes[assign[covered]] = -1                    # groups a label already reaches come last
    chosen: list[int] = []
    for j in np.argsort(-sizes, kind="stable"):
        if len(chosen) == k or sizes[j] <= 0:
            break
        members = np.flatnonzero(assign == j)
        chosen.append(_most_typical(x, members, dist[members, j]))
    if len(chosen) < k:   # fewer free clusters than k: fill with k-centre picks
        taken = set(chosen) | set(covered)
        picks = k_center_greedy(x, k - len(chosen), sorted(taken), seed)
        chosen += [i for i in picks if i not in taken]
    return chosen[:k]


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """len(a) × len(b) squared Euclidean distances, by the dot-product expansion."""
    return (a * a).sum(1)[:, None] - 2 * a @ b.T + (b * b).sum(1)[None]


def _most_typical(x: np.ndarray, members: np.ndarray, to_centre: np.ndarray,
                  neighbours: int = 20, at_most: int = 1000) -> int:
    """The member in the densest part of its cluster: the smallest mean distance to its
    nearest fellow members (TypiClust's typicality). The image nearest the centroid can
    sit between two groups of a cluster: picking it instead, selftrain on 100 suggested
    labels measured 1.6 points lower on letters from many typefaces and 0.7 on MNIST
    (docs/benchmarks-classifier.md). Large clusters are judged on their `at_most` members
    nearest the centre, which bounds the cost."""
    if len(members) <= 2:
        return int(members[np.argmin(to_centre)])
    near = members[np.argsort(to_centre, kind="stable")[:at_most]]
    p = x[near]
    d2 = np.maximum(_squared_distances(p, p), 0.0)        # rounding can dip below 0
    np.fill_diagonal(d2, np.inf)                          # not its own neighbour
    k = min(neighbours, len(near) - 1)
    nearest = np.partition(d2, k - 1, axis=1)[:, :k]
    return int(near[np.argmin(np.sqrt(nearest).mean(1))])


def least_confident(predictions: Mapping[str, tuple[str, float]], k: int,
                    candidates: Sequence[str] | None = None) -> list[str]:
    """The k candidates whose predicted class has the lowest confidence."""
    pool = [r for r in (candidates if candidates is not None else predictions)
            if r in predictions]
    pool.sort(key=lambda r: (float(predictions[r][1]), r))
    return pool[:k]


def suggest_next(relpaths: Sequence[str], labels: Mapping[str, str], k: int = 24, *,
                 embeddings: Mapping[str, np.ndarray] | None = None,
                 predictions: Mapping[str, tuple[str, float]] | None = None,
                 seed: int = 0) -> tuple[list[str], str]:
    """(the unlabelled images to label next, the strategy used)."""
    unlabelled = [r for r in relpaths if r not in labels]
    if not unlabelled:
        return [], "none"
    if predictions:
        picked = least_confident(predictions, k, unlabelled)
        if picked:
            return picked, "least_confident"
    if embeddings:
        known = [r for r in relpaths if r in embeddings]
        if any(r not in labels for r in known):
            features = standardise(np.stack([np.asarray(embeddings[r], dtype=np.float32).ravel()
                                             for r in known]))
            centers = [i for i, r in enumerate(known) if r in labels]
            # typical images of the groups no label reaches yet (measured better than
            # k-centre's outliers and than random picks, benchmarks-classifier.md)
            rows = representative_sample(features, k, seed=seed, covered=centers)
            return [known[i] for i in rows], "representative"
    return spread_sample(unlabelled, k, seed), "spread"


def standardise(features: np.ndarray) -> np.ndarray:
    """Every feature to zero mean and unit spread, so no few large ones decide the distances
    (label propagation's embedding starts with it too), as float64."""
    x = np.asarray(features, dtype=np.float64)
    return (x - x.mean(0)) / np.maximum(x.std(0), 1e-6)
