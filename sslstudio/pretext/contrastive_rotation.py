"""Contrastive learning plus rotation prediction, in one step.

SimCLR (contrastive.py) makes the features ignore how an image was cropped and
recoloured; rotation prediction (rotation.py) makes them notice which way is up.
Here each step trains both on one backbone: the two SimCLR views of every image,
and one extra copy turned by a random quarter turn whose angle a small head must
name (in the spirit of Dangovski et al., "Equivariant Contrastive Learning",
ICLR 2022). The rotated copies are kept out of the contrastive loss, so the
contrastive features do not have to be invariant to rotation. A step costs
about 1.5 times a contrastive step (3N images through the backbone instead of 2N).
"""
from __future__ import annotations

import torch
from torch import nn

from sslstudio.pretext.augment import like
from sslstudio.pretext.base import PreviewImage, TaskOption, classification_loss
from sslstudio.pretext.contrastive import ContrastiveTask, ProjectionHead
from sslstudio.pretext.rotation import ClassifierHead, rotate_batch


class ContrastiveRotationHeads(nn.Module):
    """The projection head for the views and the rotation classifier for the turned copies."""

    def __init__(self, in_features: int, hidden: int, projection_dim: int) -> None:
        super().__init__()
        self.projection = ProjectionHead(in_features, hidden, projection_dim)
        self.rotation = ClassifierHead(in_features, 4)

    def forward(self, features: torch.Tensor):
        n = features.shape[0] // 3   # 2N views, then N rotated copies
        return self.projection(features[:2 * n]), self.rotation(features[2 * n:])


class ContrastiveRotationTask(ContrastiveTask):
    name = "contrastive_rotation"
    title = "Contrastive + rotation"
    description = ("Contrastive learning, and at the same time the network names how far a "
                   "third copy of each image was turned, so its features also know which way "
                   "is up.")
    metric_names = ("accuracy", "rotation_accuracy")
    OPTIONS = ContrastiveTask.OPTIONS + (
        TaskOption("rotation_weight", 0.5, "weight of the rotation loss beside the contrastive "
                   "loss", minimum=0.0, maximum=10.0),
    )

    def build_head(self, backbone: nn.Module) -> nn.Module:
        return ContrastiveRotationHeads(backbone.num_features, self.hidden, self.projection_dim)

    def make_batch(self, images: torch.Tensor):
        views, partner = super().make_batch(images)
        turns = torch.randint(0, 4, (images.shape[0],), device=images.device)
        turned = like(rotate_batch(images, turns), images)
        return torch.cat([views, turned]), (partner, turns)

    def loss(self, outputs, targets):
        z, rotation_logits = outputs
        partner, turns = targets
        loss, metrics = super().loss(z, partner)
        rotation_loss, rotation = classification_loss(rotation_logits, turns)
        return loss + self.rotation_weight * rotation_loss, {
            **metrics, "rotation_accuracy": rotation["accuracy"]}

    def preview(self, inputs, outputs, targets, max_items: int = 8) -> list[PreviewImage]:
        n = inputs.shape[0] // 3
        return super().preview(inputs[:2 * n], outputs[0], targets[0], max_items)
