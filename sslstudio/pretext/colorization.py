"""Colourisation (Zhang, Isola & Efros, ECCV 2016).

The network sees only the lightness (L of CIE Lab) and predicts the colour (ab).
By default it classifies each pixel's colour into quantised ab bins, with class
rebalancing so rare, saturated colours count, and turns the prediction back into
a colour with the "annealed mean"; plain regression of ab is an option.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sslstudio.pretext import previews
from sslstudio.pretext.augment import like
from sslstudio.pretext.base import PretextTask, PreviewImage, TaskOption
from sslstudio.pretext.inpainting import UpsamplingDecoder

# sRGB (D65) ↔ CIE XYZ
RGB_TO_XYZ = ((0.412453, 0.357580, 0.180423),
              (0.212671, 0.715160, 0.072169),
              (0.019334, 0.119193, 0.950227))
XYZ_TO_RGB = tuple(map(tuple, torch.linalg.inv(torch.tensor(RGB_TO_XYZ, dtype=torch.float64)).tolist()))
WHITE = (0.950456, 1.0, 1.088754)
AB_RANGE = 110.0
DELTA = 6 / 29


# ---------------------------------------------------------------------------- colour space
def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """N×3×H×W sRGB in [0, 1] → Lab (L in [0, 100], a and b roughly in [-110, 110])."""
    rgb = rgb.float().clamp(0, 1)
    linear = torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055).pow(2.4))
    matrix = rgb.new_tensor(RGB_TO_XYZ) / rgb.new_tensor(WHITE).view(3, 1)
    xyz = torch.einsum("ij,njhw->nihw", matrix, linear)
    f = torch.where(xyz > DELTA ** 3, xyz.clamp(min=1e-12).pow(1 / 3),
                    xyz / (3 * DELTA ** 2) + 4 / 29)
    fx, fy, fz = f[:, 0], f[:, 1], f[:, 2]
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=1)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Inverse of `rgb_to_lab`; colours outside sRGB are clipped to [0, 1]."""
    lab = lab.float()
    fy = (lab[:, 0] + 16) / 116
    f = torch.stack([fy + lab[:, 1] / 500, fy, fy - lab[:, 2] / 200], dim=1)
    xyz = torch.where(f > DELTA, f.pow(3), 3 * DELTA ** 2 * (f - 4 / 29))
    xyz = xyz * lab.new_tensor(WHITE).view(1, 3, 1, 1)
    matrix = lab.new_tensor(XYZ_TO_RGB)  # inverted on the CPU: not every device has linalg.inv
    linear = torch.einsum("ij,njhw->nihw", matrix, xyz).clamp(0, 1)
    rgb = torch.where(linear <= 0.0031308, linear * 12.92,
                      1.055 * linear.clamp(min=1e-12).pow(1 / 2.4) - 0.055)
    return rgb.clamp(0, 1)


@lru_cache(maxsize=4)
def ab_bins(grid: int = 10) -> torch.Tensor:
    """Centres (Q×2) of the ab grid cells that some sRGB colour falls into."""
    steps = torch.linspace(0, 1, 48)
    cube = torch.stack(torch.meshgrid(steps, steps, steps, indexing="ij")).reshape(1, 3, -1, 1)
    ab = rgb_to_lab(cube)[0, 1:, :, 0].T                         # every colour's (a, b)
    cells = torch.round((ab + AB_RANGE) / grid).long()
    side = int(round(2 * AB_RANGE / grid)) + 1
    used = torch.unique(cells[:, 0] * side + cells[:, 1])
    centres = torch.stack([used // side, used % side], dim=1).float() * grid - AB_RANGE
    return centres


# ---------------------------------------------------------------------------- grayscale check
def check_color(images) -> str | None:
    """A message for the user when the images are (nearly) all grayscale, else None.

    images: N×H×W×3 uint8 (numpy) or N×3×H×W floats in [0, 1] (torch).
    """
    if torch.is_tensor(images):
        array = (images.detach().float().cpu().clamp(0, 1) * 255).permute(0, 2, 3, 1).numpy()
    else:
        array = np.asarray(images, dtype=np.float32)
    if array.ndim != 4 or array.shape[-1] != 3 or len(array) == 0:
        return None
    spread = array.max(axis=-1) - array.min(axis=-1)            # 0 for a gray pixel
    colourful = (spread.reshape(len(array), -1).mean(axis=1) > 6.0).mean()
    if colourful >= 0.2:
        return None
    return (f"The colorization task needs colour images, but {1 - colourful:.0%} of the "
            f"{len(array)} images checked are grayscale or nearly so. "
            "Choose another task (rotation, jigsaw, inpainting or contrastive).")


# ---------------------------------------------------------------------------- head
class ColorizationHead(nn.Module):
    """Decoder to ab logits (or ab values) at a quarter of the image size, plus the running
    histogram of target colours that class rebalancing needs (a buffer, so it is checkpointed)."""

    def __init__(self, in_channels: int, stride: int, outputs: int, bins: int) -> None:
        super().__init__()
        self.decoder = UpsamplingDecoder(in_channels, stride, outputs, out_stride=4,
                                         out_kernel=1)
        self.register_buffer("ab_counts", torch.zeros(bins))

    def forward(self, features: torch.Tensor, size=None) -> torch.Tensor:
        return self.decoder(features, size)


class ColorizationTask(PretextTask):
    name = "colorization"
    title = "Colorization"
    description = ("The network sees each image in black and white and learns to paint in its "
                   "colours, which teaches it to recognise what things are.")
    metric_names = ("bin_accuracy", "ab_error")
    requires_color = True
    OPTIONS = (
        TaskOption("mode", "classification", "predict quantised colours (paper) or regress them",
                   choices=("classification", "regression")),
        TaskOption("grid", 10, "size of the ab quantisation cells", minimum=4, maximum=40,
                   label="Colour cell size"),
        TaskOption("rebalance", 0.5, "mixing of the colour prior with uniform (λ); 1 = no "
                   "rebalancing", minimum=0.0, maximum=1.0),
        TaskOption("soft_neighbors", 5, "bins sharing each pixel's target (soft encoding)",
                   minimum=1, maximum=32),
        TaskOption("temperature", 0.38, "annealed-mean temperature for showing predictions",
                   minimum=0.01, maximum=1.0),
    )

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self._bins_cpu = ab_bins(self.grid)
        self._bins: dict[torch.device, torch.Tensor] = {}
        self._head: ColorizationHead | None = None
        self._fallback_counts = torch.zeros(len(self._bins_cpu))

    @property
    def classes(self) -> int:
        return len(self._bins_cpu)

    def bins(self, device) -> torch.Tensor:
        device = torch.device(device)
        if device not in self._bins:
            self._bins[device] = self._bins_cpu.to(device)
        return self._bins[device]

    def check_images(self, images) -> str | None:
        return check_color(images)

    def build_head(self, backbone: nn.Module) -> nn.Module:
        outputs = self.classes if self.mode == "classification" else 2
        self._head = ColorizationHead(backbone.num_features, backbone.stride, outputs, self.classes)
        return self._head

    def make_batch(self, images: torch.Tensor):
        lab = rgb_to_lab(images)
        lightness = lab[:, :1] / 100
        inputs = like(lightness.expand(-1, 3, -1, -1).to(images.dtype), images)
        return inputs, lab[:, 1:]                                   # ab in Lab units

    def forward(self, backbone, head, inputs):
        features = backbone.forward_features(inputs)
        s = inputs.shape[-1]
        return head(features, size=(max(1, s // 4), max(1, s // 4)))

    # ------------------------------------------------------------------ encoding / decoding
    def encode(self, ab: torch.Tensor, k: int):
        """Nearest k bins of each pixel (N×k×h×w indices) and Gaussian weights (σ = 5)."""
        n, _, h, w = ab.shape
        pixels = ab.permute(0, 2, 3, 1).reshape(-1, 2)
        distance = torch.cdist(pixels, self.bins(ab.device))
        near, index = distance.topk(min(k, self.classes), dim=1, largest=False)
        weight = torch.exp(-near.square() / (2 * 5.0 ** 2))
        weight = weight / weight.sum(dim=1, keepdim=True).clamp(min=1e-12)
        reshape = lambda t: t.view(n, h, w, -1).permute(0, 3, 1, 2)  # noqa: E731
        return reshape(index), reshape(weight)

    def decode(self, outputs: torch.Tensor) -> torch.Tensor:
        """Predicted ab (N×2×h×w, Lab units): annealed mean, or the regressed values."""
        outputs = outputs.float()
        if self.mode == "regression":
            return outputs * AB_RANGE
        probs = torch.softmax(outputs / self.temperature, dim=1)
        return torch.einsum("nqhw,qc->nchw", probs, self.bins(outputs.device))

    def class_weights(self, nearest: torch.Tensor) -> torch.Tensor:
        """Rebalancing weight per bin from the running colour histogram (updated here)."""
        counts = self._head.ab_counts if self._head is not None else self._fallback_counts
        if counts.device != nearest.device:
            counts = self._fallback_counts = self._fallback_counts.to(nearest.device)
        counts += torch.bincount(nearest.flatten(), minlength=self.classes).to(counts.dtype)
        prior = counts / counts.sum().clamp(min=1)
        weights = 1 / ((1 - self.rebalance) * prior + self.rebalance / self.classes)
        return weights / (prior * weights).sum()                    # expected weight 1

    # ------------------------------------------------------------------ loss
    def loss(self, outputs, targets):
        outputs = outputs.float()
        ab = F.adaptive_avg_pool2d(targets.float(), outputs.shape[-2:])
        index, weight = self.encode(ab, self.soft_neighbors if self.mode == "classification" else 1)
        nearest = index[:, 0]
        with torch.no_grad():
            predicted_ab = self.decode(outputs.detach())
            ab_error = (predicted_ab - ab).abs().mean()
        if self.mode == "regression":
            loss = F.l1_loss(outputs, ab / AB_RANGE)
            guess = self.encode(predicted_ab, 1)[0][:, 0]
        else:
            log_probs = F.log_softmax(outputs, dim=1)
            per_pixel = -(log_probs.gather(1, index) * weight).sum(dim=1)   # N×h×w
            with torch.no_grad():
                pixel_weight = self.class_weights(nearest)[nearest]
            loss = (per_pixel * pixel_weight).mean()
            guess = outputs.argmax(dim=1)
        accuracy = (guess == nearest).float().mean()
        return loss, {"bin_accuracy": accuracy, "ab_error": ab_error}  # tensors: no sync

    # ------------------------------------------------------------------ preview
    def preview(self, inputs, outputs, targets, max_items: int = 8) -> list[PreviewImage]:
        count = min(max_items, inputs.shape[0])
        lightness = inputs[:count, :1].float() * 100
        size = lightness.shape[-2:]
        predicted = F.interpolate(self.decode(outputs[:count]), size=size, mode="bilinear",
                                  align_corners=False)
        painted = lab_to_rgb(torch.cat([lightness, predicted], dim=1))
        truth = lab_to_rgb(torch.cat([lightness, targets[:count].float()], dim=1))
        error = (predicted - targets[:count].float()).abs().mean(dim=(1, 2, 3))
        rows = [previews.to_uint8(t) for t in (inputs[:count, :1], painted, truth)]
        cells = []
        for k in range(count):
            triple = previews.hstack([previews.enlarge(r[k]) for r in rows], gap=3)
            cells.append(previews.Cell(triple, f"L input | predicted | true\nab error {error[k]:.1f}"))
        picture = previews.grid(cells, columns=2, caption_lines=2)
        return [PreviewImage("Lightness, predicted colour, true colour", picture)]
