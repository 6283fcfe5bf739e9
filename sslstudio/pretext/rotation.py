"""Rotation prediction (Gidaris, Singh & Komodakis, ICLR 2018).

Each image is shown at 0°, 90°, 180° and 270°; the network must tell which. To
answer it has to recognise what is upright in a picture: objects, their parts
and their usual orientation.
"""
from __future__ import annotations

import torch
from torch import nn

from sslstudio.pretext import previews
from sslstudio.pretext.augment import like
from sslstudio.pretext.base import PretextTask, PreviewImage, TaskOption, classification_loss

ANGLES = (0, 90, 180, 270)


def rotate_batch(images: torch.Tensor, quarter_turns: torch.Tensor) -> torch.Tensor:
    """Rotate image i counter-clockwise by quarter_turns[i] × 90° (square images)."""
    out = torch.empty_like(images)
    for k in range(4):
        chosen = quarter_turns == k
        if bool(chosen.any()):
            out[chosen] = torch.rot90(images[chosen], k, dims=(2, 3))
    return out


class ClassifierHead(nn.Module):
    """Pooled features → small MLP → logits (the MLP keeps task specifics off the backbone)."""

    def __init__(self, in_features: int, classes: int, hidden: int = 256) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_features, hidden), nn.BatchNorm1d(hidden),
                                 nn.ReLU(inplace=True), nn.Linear(hidden, classes))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.dim() == 4:
            features = features.mean(dim=(2, 3))
        return self.mlp(features)


class RotationTask(PretextTask):
    name = "rotation"
    title = "Rotation"
    description = ("The network sees each image turned by 0°, 90°, 180° or 270° and learns to "
                   "tell which way is up, which teaches it what objects look like.")
    metric_names = ("accuracy",)
    OPTIONS = (
        TaskOption("all_rotations", True,
                   "show every image in all four rotations (as in the paper); off: one random "
                   "rotation per image, 4× cheaper per step"),
        TaskOption("hidden", 256, "width of the hidden layer of the rotation classifier",
                   minimum=8, label="Head width"),
    )

    def build_head(self, backbone: nn.Module) -> nn.Module:
        return ClassifierHead(backbone.num_features, len(ANGLES), self.hidden)

    def make_batch(self, images: torch.Tensor):
        n = images.shape[0]
        if self.all_rotations:
            inputs = torch.cat([torch.rot90(images, k, dims=(2, 3)) for k in range(4)])
            targets = torch.arange(4, device=images.device).repeat_interleave(n)
        else:
            targets = torch.randint(0, 4, (n,), device=images.device)
            inputs = rotate_batch(images, targets)
        return like(inputs, images), targets

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor):
        return classification_loss(outputs, targets)

    def preview(self, inputs, outputs, targets, max_items: int = 8) -> list[PreviewImage]:
        count = min(max_items, inputs.shape[0])
        # Spread the picks over the batch so every rotation shows up.
        picks = torch.linspace(0, inputs.shape[0] - 1, count).round().long()
        if self.all_rotations and inputs.shape[0] % 4 == 0:
            n = inputs.shape[0] // 4
            picks = torch.tensor([(i % 4) * n + (i // 4) % n for i in range(count)])
        probs = outputs.detach().float().softmax(1).cpu()
        images = previews.to_uint8(inputs[picks])
        cells = []
        for image, index in zip(images, picks.tolist()):
            truth = int(targets[index])
            guess = int(probs[index].argmax())
            caption = f"true {ANGLES[truth]}°\npred {ANGLES[guess]}° {probs[index, guess]:.0%}"
            cells.append(previews.Cell(previews.enlarge(image), caption,
                                       previews.GOOD if guess == truth else previews.BAD))
        picture = previews.grid(cells, columns=4, caption_lines=2)
        return [PreviewImage("Predicted vs true rotation", picture)]
