"""The classifier as one torch module: backbone → pooled features → head → probabilities.

Every method ends here, so export and predict see one kind of model: a linear
head (linear probe, fine-tuning, scratch) or a cosine kNN head holding its
reference features. Input is float N×3×S×S in [0, 1]; the backbone normalises.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class KNNHead(nn.Module):
    """Cosine k-nearest-neighbour vote over stored, L2-normalised reference features."""

    def __init__(self, bank: torch.Tensor, bank_labels: torch.Tensor, n_classes: int,
                 k: int = 10, temperature: float = 0.1) -> None:
        super().__init__()
        self.register_buffer("bank", nn.functional.normalize(bank.float(), dim=1))
        self.register_buffer("bank_onehot",
                             nn.functional.one_hot(bank_labels.long(), n_classes).float())
        self.k = int(min(k, len(bank)))
        self.temperature = float(temperature)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Class probabilities: similarity-weighted votes of the k nearest references."""
        sims = nn.functional.normalize(features, dim=1) @ self.bank.t()
        top, idx = sims.topk(self.k, dim=1)
        weights = torch.exp((top - 1.0) / self.temperature)        # nearest counts most
        votes = (weights.unsqueeze(2) * self.bank_onehot[idx]).sum(dim=1)
        return votes / votes.sum(dim=1, keepdim=True)


class ClassifierModel(nn.Module):
    """backbone + head; forward returns class probabilities (N×K)."""

    def __init__(self, backbone: nn.Module, head: nn.Module, head_kind: str = "linear",
                 flip_average: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.head_kind = head_kind          # "linear" → logits; "knn" → probabilities
        # features averaged with the mirrored image, inside the model so that an
        # exported file computes exactly what the app computed
        self.flip_average = flip_average

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.flip_average:
            return (self.backbone(x) + self.backbone(torch.flip(x, dims=[3]))) / 2
        return self.backbone(x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(self.features(x))
        if self.head_kind == "knn":
            return out
        return torch.softmax(out, dim=1)


def linear_head_from_sklearn(scaler, logistic, n_classes: int) -> nn.Linear:
    """Fold a StandardScaler + LogisticRegression into one nn.Linear on raw features.

    logits = W·(x − μ)/σ + b = (W/σ)·x + (b − W·μ/σ). sklearn's binary model
    keeps one row of weights (the second class's logit against 0), so the first
    class gets zeros: softmax then equals sklearn's sigmoid.
    """
    mean = np.asarray(scaler.mean_, np.float64)
    scale = np.asarray(scaler.scale_, np.float64)
    coef = np.asarray(logistic.coef_, np.float64) / scale
    bias = np.asarray(logistic.intercept_, np.float64) - coef @ mean
    present = list(logistic.classes_)
    weight = np.zeros((n_classes, coef.shape[1]))
    full_bias = np.full(n_classes, -1e4)  # classes absent from training are never predicted
    if coef.shape[0] == 1:
        weight[present[1]] = coef[0]
        full_bias[present[1]] = bias[0]
        full_bias[present[0]] = 0.0
    else:
        for row, cls in enumerate(present):
            weight[cls] = coef[row]
            full_bias[cls] = bias[row]
    head = nn.Linear(coef.shape[1], n_classes)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(weight).float())
        head.bias.copy_(torch.from_numpy(full_bias).float())
    return head
