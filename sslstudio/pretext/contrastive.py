"""Contrastive learning with SimCLR (Chen et al., ICML 2020).

Two randomly augmented views of every image go through the backbone and a small
projection head; the NT-Xent loss pulls the two views of one image together and
pushes the views of other images away. What survives cropping, colour changes and
blur is what the picture shows, so that is what the features learn.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sslstudio.pretext import previews
from sslstudio.pretext.augment import SimCLRAugment, like
from sslstudio.pretext.base import PretextTask, PreviewImage, TaskOption


class ProjectionHead(nn.Module):
    """Two-layer MLP on pooled features (the paper's g(·)); discarded after pretraining."""

    def __init__(self, in_features: int, hidden: int = 512, out_features: int = 128) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_features, hidden), nn.BatchNorm1d(hidden),
                                 nn.ReLU(inplace=True), nn.Linear(hidden, out_features))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.dim() == 4:
            features = features.mean(dim=(2, 3))
        return self.mlp(features)


def nt_xent(z: torch.Tensor, partner: torch.Tensor, temperature: float):
    """Normalised-temperature cross entropy over 2N embeddings; returns (loss, similarities)."""
    z = F.normalize(z.float(), dim=1)
    similarity = z @ z.T
    logits = similarity / temperature
    logits = logits.masked_fill(torch.eye(len(z), dtype=torch.bool, device=z.device), float("-inf"))
    return F.cross_entropy(logits, partner), similarity, logits


class ContrastiveTask(PretextTask):
    name = "contrastive"
    title = "Contrastive (SimCLR)"
    description = ("The network sees two randomly altered copies of each image (cropped, "
                   "turned, recoloured, blurred) and learns to match them, so it keeps what "
                   "the image shows and ignores how it was photographed.")
    metric_names = ("accuracy",)
    min_batch = 2   # each view is told apart from the other images' views: one image has none
    OPTIONS = (
        TaskOption("temperature", 0.2, "softmax temperature of the NT-Xent loss",
                   minimum=0.01, maximum=2.0),
        TaskOption("projection_dim", 128, "size of the projected embedding", minimum=8,
                   label="Projection size"),
        TaskOption("hidden", 512, "hidden width of the projection head", minimum=8,
                   label="Head width"),
        TaskOption("crop_min", 0.2, "smallest crop, as a share of the image area",
                   minimum=0.02, maximum=1.0, label="Smallest crop"),
        TaskOption("jitter_strength", 0.5, "strength of colour jitter (0 = none)",
                   minimum=0.0, maximum=2.0, label="Colour jitter"),
        TaskOption("grayscale_p", 0.2, "chance that a view is gray", minimum=0.0, maximum=1.0),
        TaskOption("blur_p", 0.5, "chance that a view is blurred", minimum=0.0, maximum=1.0),
        # turn, slant and stroke width: measured on handwriting and typefaces
        # (docs/benchmarks-classifier.md, 2026-12-04 and -06: they lift every set measured);
        # set them to 0 for the plain SimCLR recipe
        TaskOption("degrees", 15.0, "turn each view by up to this many degrees",
                   minimum=0.0, maximum=180.0, label="Turn (degrees)"),
        TaskOption("shear", 15.0, "slant each view by up to this many degrees",
                   minimum=0.0, maximum=45.0, label="Slant (degrees)"),
        TaskOption("stroke_p", 0.5, "chance that a view's strokes get thinner or bolder",
                   minimum=0.0, maximum=1.0, label="Stroke width chance"),
    )

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.augment = SimCLRAugment(crop_scale=(self.crop_min, 1.0),
                                     jitter_strength=self.jitter_strength,
                                     grayscale_p=self.grayscale_p, blur_p=self.blur_p,
                                     degrees=self.degrees, shear=self.shear,
                                     stroke_p=self.stroke_p)

    def build_head(self, backbone: nn.Module) -> nn.Module:
        return ProjectionHead(backbone.num_features, self.hidden, self.projection_dim)

    def make_batch(self, images: torch.Tensor):
        n = images.shape[0]
        views = like(torch.cat([self.augment(images), self.augment(images)]), images)
        index = torch.arange(2 * n, device=images.device)
        partner = (index + n) % (2 * n)  # view i of the first half matches view i + N
        return views, partner

    def forward(self, backbone, head, inputs):
        return head(backbone(inputs))

    def loss(self, outputs, targets):
        loss, _, logits = nt_xent(outputs, targets, self.temperature)
        accuracy = (logits.detach().argmax(dim=1) == targets).float().mean()
        return loss, {"accuracy": accuracy}  # a tensor: no device sync per step

    def preview(self, inputs, outputs, targets, max_items: int = 8) -> list[PreviewImage]:
        n = inputs.shape[0] // 2
        count = min(max_items, n)
        # a preview needs no graph (a caller may pass outputs straight from training)
        _, similarity, logits = nt_xent(outputs.detach(), targets, self.temperature)
        similarity = similarity.cpu()
        rank = (logits > logits.gather(1, targets.view(-1, 1))).sum(dim=1).cpu() + 1
        views = previews.to_uint8(inputs)
        cells = []
        for k in range(count):
            pair = previews.hstack([previews.enlarge(views[k]), previews.enlarge(views[k + n])], 3)
            found = int(rank[k]) == 1
            caption = f"cosine {similarity[k, k + n]:.2f}\npartner rank {int(rank[k])} of {2 * n - 1}"
            cells.append(previews.Cell(pair, caption, previews.GOOD if found else previews.BAD))
        pairs = previews.grid(cells, columns=4, caption_lines=2)
        # First views (rows) against second views (columns) of up to 32 images: the diagonal
        # holds the matching pairs, which should stand out red from the rest. (The full 2N×2N
        # matrix is dominated by each view's similarity 1 with itself.)
        m = min(n, 32)
        cross = similarity[:m, n:n + m]
        low, high = float(cross.min()), float(cross.max())
        heat = previews.heatmap(cross, low, high)
        heat = previews.enlarge(heat, 256 // m * m, 256)
        heat = previews.titled(heat, f"diagonal: same image; blue {low:.2f}, red {high:.2f}")
        heat = previews.titled(heat, "cosine of view 1 (rows) and view 2 (columns)")
        return [PreviewImage("Pairs of views and their similarity", pairs),
                PreviewImage("Similarity of first and second views", heat)]
