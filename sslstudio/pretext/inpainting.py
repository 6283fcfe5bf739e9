"""Inpainting with a context encoder (Pathak et al., CVPR 2016).

Parts of each image are hidden and the network paints them back from the
surroundings. To fill a hole plausibly it has to understand what the visible
part shows. Masks: one centre block (as in the paper), several random blocks, or
irregular brush strokes.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sslstudio.pretext import previews
from sslstudio.pretext.augment import uniform
from sslstudio.pretext.base import PretextTask, PreviewImage, TaskOption

FILL = (0.485, 0.456, 0.406)  # hidden pixels show the mean colour: no information, no bias
MASKS = ("center", "random_blocks", "irregular")


# ---------------------------------------------------------------------------- masks (N×1×S×S, 1 = hidden)
def center_mask(n: int, size: int, device, fraction: float = 0.25) -> torch.Tensor:
    side = max(1, round(size * math.sqrt(fraction)))
    start = (size - side) // 2
    mask = torch.zeros(n, 1, size, size, device=device)
    mask[:, :, start:start + side, start:start + side] = 1
    return mask


def block_mask(n: int, size: int, device, fraction: float = 0.25, blocks: int = 4) -> torch.Tensor:
    """Several random rectangles that together cover roughly `fraction` of the image."""
    side = math.sqrt(fraction / blocks) * 1.15  # a bit larger: blocks overlap now and then
    w = uniform((n, blocks, 1, 1), side * 0.6, side * 1.4, device)
    h = (side * side / w).clamp(max=0.9)
    x0 = uniform((n, blocks, 1, 1), 0, 1, device) * (1 - w)
    y0 = uniform((n, blocks, 1, 1), 0, 1, device) * (1 - h)
    coords = (torch.arange(size, device=device) + 0.5) / size
    xs, ys = coords.view(1, 1, 1, -1), coords.view(1, 1, -1, 1)
    inside = (xs >= x0) & (xs < x0 + w) & (ys >= y0) & (ys < y0 + h)
    return inside.any(dim=1, keepdim=True).float()


def stroke_mask(n: int, size: int, device, strokes: int = 3, vertices: int = 5,
                width: float = 0.09) -> torch.Tensor:
    """Random brush strokes: random walks drawn as thick lines, rasterised at low
    resolution (cheap for big batches) and smoothly upsampled."""
    low = min(size, 32)
    steps = 8  # points per segment
    start = uniform((n, strokes, 1, 2), 0.1, 0.9, device)
    angle = uniform((n, strokes, vertices - 1, 1), 0, 2 * math.pi, device)
    length = uniform((n, strokes, vertices - 1, 1), 0.08, 0.25, device)
    moves = torch.cat([angle.cos(), angle.sin()], dim=-1) * length
    path = torch.cat([start, start + moves.cumsum(dim=2)], dim=2).clamp(0, 1)  # N×K×V×2
    t = torch.linspace(0, 1, steps, device=device).view(1, 1, 1, -1, 1)
    points = path[:, :, :-1, None] + (path[:, :, 1:, None] - path[:, :, :-1, None]) * t
    points = points.reshape(n, -1, 2)                                           # N×P×2
    coords = (torch.arange(low, device=device) + 0.5) / low
    gy, gx = torch.meshgrid(coords, coords, indexing="ij")
    pixels = torch.stack([gx, gy], dim=-1).view(1, -1, 2)                       # 1×L²×2
    nearest = torch.cdist(pixels.expand(n, -1, -1), points).amin(dim=2)        # N×L²
    radius = uniform((n, 1), width * 0.6, width * 1.4, device)
    mask = (nearest < radius).float().view(n, 1, low, low)
    if low != size:
        mask = (F.interpolate(mask, size=(size, size), mode="bilinear",
                              align_corners=False) > 0.5).float()
    return mask


# ---------------------------------------------------------------------------- decoder
class UpsamplingDecoder(nn.Module):
    """Spatial features → image: (upsample ×2, conv-BN-ReLU) per octave from `stride` down to
    `out_stride`; `size` in forward resizes the result exactly (odd image sizes)."""

    def __init__(self, in_channels: int, stride: int, out_channels: int = 3,
                 width: int = 256, min_width: int = 32, out_stride: int = 1,
                 out_kernel: int = 3) -> None:
        super().__init__()
        stages = max(0, round(math.log2(max(1, stride) / max(1, out_stride))))
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 1, bias=False),
                                   nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        cin = width
        for _ in range(stages):
            cout = max(min_width, cin // 2)
            layers += [nn.Upsample(scale_factor=2, mode="nearest"),
                       nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                       nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            cin = cout
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv2d(cin, out_channels, out_kernel, padding=out_kernel // 2)

    def forward(self, features: torch.Tensor, size=None) -> torch.Tensor:
        x = self.out(self.body(features))
        if size is not None and tuple(x.shape[-2:]) != tuple(size):
            x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)
        return x


class InpaintingTask(PretextTask):
    name = "inpainting"
    title = "Inpainting"
    description = ("Parts of each image are hidden and the network learns to paint them back "
                   "from what it can still see, which teaches it to understand the scene.")
    metric_names = ("psnr", "masked_l1")
    OPTIONS = (
        TaskOption("mask", "random_blocks", "shape of the hidden region", choices=MASKS,
                   label="Mask shape"),
        TaskOption("mask_fraction", 0.25, "share of the image hidden (centre and blocks)",
                   minimum=0.02, maximum=0.8, label="Hidden share"),
        TaskOption("outside_weight", 0.05, "weight of the reconstruction error on visible pixels",
                   minimum=0.0, maximum=1.0, label="Visible pixels' weight"),
        TaskOption("l1_weight", 0.0, "weight of an extra L1 term on the hidden pixels (sharper)",
                   minimum=0.0, maximum=10.0),
    )

    def build_head(self, backbone: nn.Module) -> nn.Module:
        return UpsamplingDecoder(backbone.num_features, backbone.stride)

    def make_mask(self, n: int, size: int, device) -> torch.Tensor:
        if self.mask == "center":
            return center_mask(n, size, device, self.mask_fraction)
        if self.mask == "irregular":
            return stroke_mask(n, size, device)
        return block_mask(n, size, device, self.mask_fraction)

    def make_batch(self, images: torch.Tensor):
        n, _, s, _ = images.shape
        mask = self.make_mask(n, s, images.device).to(images.dtype)
        fill = images.new_tensor(FILL).view(1, 3, 1, 1)
        inputs = images * (1 - mask) + fill * mask
        return inputs, (images, mask)

    def forward(self, backbone, head, inputs):
        return torch.sigmoid(head(backbone.forward_features(inputs), size=inputs.shape[-2:]))

    def loss(self, outputs, targets):
        images, mask = targets
        output = outputs.float()
        images, mask = images.float(), mask.float()
        error = output - images
        hidden = mask.sum() * 3 + 1e-6
        visible = (1 - mask).sum() * 3 + 1e-6
        mse_hidden = (error.square() * mask).sum() / hidden
        l1_hidden = (error.abs() * mask).sum() / hidden
        loss = mse_hidden + self.outside_weight * (error.square() * (1 - mask)).sum() / visible
        if self.l1_weight:
            loss = loss + self.l1_weight * l1_hidden
        psnr = -10 * torch.log10(mse_hidden.detach().clamp(min=1e-10))
        return loss, {"psnr": psnr, "masked_l1": l1_hidden.detach()}  # tensors: no sync

    def preview(self, inputs, outputs, targets, max_items: int = 8) -> list[PreviewImage]:
        images, mask = targets
        count = min(max_items, inputs.shape[0])
        inputs, outputs = inputs[:count].float(), outputs[:count].float()
        images, mask = images[:count].float(), mask[:count].float()
        composite = inputs * (1 - mask) + outputs * mask
        mse = ((composite - images).square() * mask).sum(dim=(1, 2, 3)) / (mask.sum(dim=(1, 2, 3)) * 3 + 1e-6)
        rows = [previews.to_uint8(t) for t in (inputs, composite, images)]
        cells = []
        for k in range(count):
            triple = previews.hstack([previews.enlarge(r[k]) for r in rows], gap=3)
            psnr = -10 * math.log10(max(float(mse[k]), 1e-10))
            cells.append(previews.Cell(triple, f"hidden | painted | truth\nPSNR {psnr:.1f} dB"))
        picture = previews.grid(cells, columns=2, caption_lines=2)
        return [PreviewImage("Masked input, reconstruction, truth", picture)]
