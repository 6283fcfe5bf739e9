"""Representation-quality signals on synthetic embeddings with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from sslstudio.train.quality import effective_rank, feature_spread, knn_accuracy, quality_report


def test_collapsed_embeddings_have_rank_one_and_no_spread():
    rng = np.random.default_rng(0)
    direction = rng.normal(size=64)
    collapsed = np.outer(rng.uniform(0.5, 2.0, size=300), direction)  # one direction, many scales
    assert effective_rank(collapsed) == pytest.approx(1.0, abs=0.05)
    std_min, std_mean = feature_spread(collapsed)
    assert std_mean < 1e-6 and std_min < 1e-6  # L2-normalised: every row is the same vector


def test_isotropic_embeddings_have_high_rank_and_spread():
    x = np.random.default_rng(1).normal(size=(512, 64))
    rank = effective_rank(x)
    assert 50 < rank <= 64
    std_min, std_mean = feature_spread(x)
    assert std_mean == pytest.approx(1 / np.sqrt(64), rel=0.15)
    assert std_min > 0.5 / np.sqrt(64)


def test_rank_counts_the_used_dimensions():
    x = np.zeros((400, 32))
    x[:, :4] = np.random.default_rng(2).normal(size=(400, 4))
    assert 3.5 < effective_rank(x) < 4.01


def test_knn_accuracy_on_separable_and_on_random_labels():
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(3, 16)) * 5
    labels = np.repeat(["a", "b", "c"], 40)
    x = centres[np.repeat(np.arange(3), 40)] + rng.normal(size=(120, 16))
    assert knn_accuracy(x, labels) > 0.95
    shuffled = rng.permutation(labels)
    assert knn_accuracy(x, shuffled) < 0.6  # chance is 1/3
    assert knn_accuracy(x, ["a"] * 120) is None  # one class: nothing to measure


def test_report_uses_only_labelled_rows_for_knn():
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.normal(size=(20, 8)) + 6, rng.normal(size=(20, 8)) - 6,
                        rng.normal(size=(60, 8))])
    tags = ["pos"] * 20 + ["neg"] * 20 + [None] * 60
    report = quality_report(x, tags)
    assert report["knn_accuracy"] == 1.0 and report["knn_labelled"] == 40
    assert report["sample_size"] == 100 and report["feature_dim"] == 8
    assert "knn_accuracy" not in quality_report(x, None)
