"""Cosine k-nearest-neighbour classification on frozen features (a quick reference)."""

from __future__ import annotations

import numpy as np
import torch

from sslstudio.train.downstream.model import KNNHead

K_GRID = (1, 5, 10, 20)


def knn_head(feats: np.ndarray, y_idx: np.ndarray, n_classes: int, k: int) -> KNNHead:
    return KNNHead(torch.from_numpy(np.asarray(feats, np.float32)),
                   torch.from_numpy(np.asarray(y_idx, np.int64)), n_classes, k=k)


@torch.no_grad()
def knn_predict(head: KNNHead, feats: np.ndarray) -> np.ndarray:
    return head(torch.from_numpy(np.asarray(feats, np.float32))).double().numpy()


def out_of_fold(feats: np.ndarray, y_idx: np.ndarray, folds, n_classes: int, k: int) -> np.ndarray:
    probs = np.zeros((len(y_idx), n_classes))
    for train, val in folds:
        probs[val] = knn_predict(knn_head(feats[train], y_idx[train], n_classes, k), feats[val])
    return probs
