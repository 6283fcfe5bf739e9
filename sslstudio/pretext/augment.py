"""Batch augmentations that run on the training device with per-sample parameters.

Every function takes N×3×H×W float images in [0, 1] and an optional
`torch.Generator` (on any device) for reproducible draws; without one, torch's
global RNG for the images' device is used, which the engine checkpoints. Geometry
goes through one affine_grid/grid_sample call, so a whole batch costs a few
kernels instead of a Python loop over images.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# ITU-R BT.601 luma, as torchvision uses for grayscale
LUMA = (0.299, 0.587, 0.114)


def uniform(shape, low, high, device, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform draws in [low, high) on `device`, from `generator` when given."""
    if generator is None:
        sample = torch.rand(shape, device=device)
    else:
        sample = torch.rand(shape, generator=generator, device=generator.device).to(device)
    return low + (high - low) * sample


def chance(n: int, p: float, device, generator=None) -> torch.Tensor:
    """A boolean per sample, True with probability p."""
    return uniform((n,), 0.0, 1.0, device, generator) < p


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """N×1×H×W luma."""
    weights = images.new_tensor(LUMA).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


def random_resized_crop(images: torch.Tensor, size: int | None = None,
                        scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3), flip_p: float = 0.5,
                        degrees: float = 0.0, shear: float = 0.0,
                        generator=None) -> torch.Tensor:
    """Crop a random area fraction and aspect ratio from each image, resize, maybe mirror.

    `degrees` and `shear` (both in degrees, drawn in ±range per image) also turn and slant
    the crop; they join the same affine matrix, so the batch still costs one resampling.
    """
    n, _, h, w = images.shape
    size = size or h
    device = images.device
    area = uniform((n,), scale[0], scale[1], device, generator)
    log_ratio = uniform((n,), math.log(ratio[0]), math.log(ratio[1]), device, generator)
    aspect = log_ratio.exp()
    # Crop width/height as fractions of the image side (clamped inside the image).
    cw = (area * aspect).sqrt().clamp(max=1.0)
    ch = (area / aspect).sqrt().clamp(max=1.0)
    cx = uniform((n,), -1.0, 1.0, device, generator) * (1 - cw)
    cy = uniform((n,), -1.0, 1.0, device, generator) * (1 - ch)
    flip = torch.where(chance(n, flip_p, device, generator), -1.0, 1.0).to(cw)
    theta = torch.zeros(n, 2, 3, device=device, dtype=images.dtype)
    theta[:, 0, 0] = cw * flip
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = ch
    theta[:, 1, 2] = cy
    if degrees or shear:
        # output coordinates are turned and slanted before the crop's scale and shift
        angle = uniform((n,), -degrees, degrees, device, generator) * (math.pi / 180)
        slant = (uniform((n,), -shear, shear, device, generator) * (math.pi / 180)).tan()
        cos, sin = angle.cos(), angle.sin()
        turn = torch.stack([torch.stack([cos, -sin + cos * slant], 1),
                            torch.stack([sin, cos + sin * slant], 1)], 1)  # rotation @ shear
        theta[:, :, :2] = theta[:, :, :2] @ turn.to(theta.dtype)
    grid = F.affine_grid(theta, (n, 3, size, size), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection",
                         align_corners=False)


def stroke_width(images: torch.Tensor, p: float = 0.5, generator=None) -> torch.Tensor:
    """With probability p, thin or thicken what is drawn by one pixel (a 3×3 min or max filter).

    Half the chosen images get the min filter (dark strokes grow), half the max (they
    shrink): the difference between a light and a bold face of the same letter.
    """
    n, device = images.shape[0], images.device
    grow = -F.max_pool2d(-images, 3, stride=1, padding=1)
    shrink = F.max_pool2d(images, 3, stride=1, padding=1)
    changed = chance(n, p, device, generator).view(-1, 1, 1, 1)
    darker = chance(n, 0.5, device, generator).view(-1, 1, 1, 1)
    return torch.where(changed, torch.where(darker, grow, shrink), images)


def horizontal_flip(images: torch.Tensor, p: float = 0.5, generator=None) -> torch.Tensor:
    flip = chance(images.shape[0], p, images.device, generator).view(-1, 1, 1, 1)
    return torch.where(flip, images.flip(3), images)


YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))
# inverted once on the CPU: linalg.inv is not available on every device (e.g. MPS)
YIQ_INVERSE = tuple(map(tuple, torch.linalg.inv(torch.tensor(YIQ, dtype=torch.float64)).tolist()))


def like(result: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """`result` made contiguous in the memory format of `images` (channels_last stays so)."""
    if images.dim() == 4 and images.is_contiguous(memory_format=torch.channels_last) \
            and not images.is_contiguous():
        return result.contiguous(memory_format=torch.channels_last)
    return result.contiguous()


def apply_color_matrix(images: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Per-image 3×3 colour transform (N×3×3) as one batched matrix product."""
    n, c, h, w = images.shape
    return torch.bmm(matrix.to(images.dtype), images.reshape(n, c, h * w)).view(n, c, h, w)


def saturation_matrix(factor: torch.Tensor) -> torch.Tensor:
    """Blend with the luma gray: factor 0 → gray, 1 → unchanged (N×3×3)."""
    luma = factor.new_tensor(LUMA).view(1, 3).expand(3, 3).unsqueeze(0)  # every row: luma weights
    eye = torch.eye(3, device=factor.device, dtype=factor.dtype).unsqueeze(0)
    f = factor.view(-1, 1, 1)
    return f * eye + (1 - f) * luma


def hue_matrix(shift: torch.Tensor) -> torch.Tensor:
    """Rotate chroma in YIQ space by shift×360° (a close, cheap stand-in for HSV hue), N×3×3."""
    to_yiq = shift.new_tensor(YIQ)
    angle = shift * (2 * math.pi)
    rotation = torch.zeros(len(shift), 3, 3, device=shift.device, dtype=shift.dtype)
    rotation[:, 0, 0] = 1
    rotation[:, 1, 1] = angle.cos()
    rotation[:, 1, 2] = -angle.sin()
    rotation[:, 2, 1] = angle.sin()
    rotation[:, 2, 2] = angle.cos()
    return shift.new_tensor(YIQ_INVERSE) @ rotation @ to_yiq


def adjust_hue(images: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    return apply_color_matrix(images, hue_matrix(shift.float()))


def color_jitter(images: torch.Tensor, brightness=0.4, contrast=0.4, saturation=0.4,
                 hue=0.1, p: float = 0.8, generator=None) -> torch.Tensor:
    """Per-image random brightness, contrast, saturation and hue, applied with probability p.

    Saturation and hue are linear in RGB, so they are folded into one 3×3 matrix per
    image and applied with a single batched matrix product.
    """
    n, device = images.shape[0], images.device
    apply = chance(n, p, device, generator).view(-1, 1, 1, 1)
    out = images
    if brightness:
        factor = uniform((n, 1, 1, 1), 1 - brightness, 1 + brightness, device, generator)
        out = (out * factor).clamp(0, 1)
    if contrast:
        factor = uniform((n, 1, 1, 1), 1 - contrast, 1 + contrast, device, generator)
        mean = grayscale(out).mean(dim=(2, 3), keepdim=True)
        out = ((out - mean) * factor + mean).clamp(0, 1)
    if saturation or hue:
        matrix = torch.eye(3, device=device).expand(n, 3, 3)
        if saturation:
            matrix = saturation_matrix(uniform((n,), 1 - saturation, 1 + saturation, device,
                                               generator))
        if hue:
            matrix = hue_matrix(uniform((n,), -hue, hue, device, generator)) @ matrix
        out = apply_color_matrix(out, matrix).clamp(0, 1)
    return torch.where(apply, out, images)


def random_grayscale(images: torch.Tensor, p: float = 0.2, generator=None) -> torch.Tensor:
    gray = chance(images.shape[0], p, images.device, generator).view(-1, 1, 1, 1)
    return torch.where(gray, grayscale(images).expand_as(images), images)


def gaussian_blur(images: torch.Tensor, sigma=(0.1, 2.0), p: float = 0.5,
                  kernel_size: int | None = None, generator=None) -> torch.Tensor:
    """Separable Gaussian blur with a per-image sigma (one grouped conv per direction)."""
    n, c, h, w = images.shape
    device = images.device
    if kernel_size is None:  # about a tenth of the image, odd, as SimCLR does
        kernel_size = max(3, int(0.1 * min(h, w)) // 2 * 2 + 1)
    radius = kernel_size // 2
    sigmas = uniform((n, 1), sigma[0], sigma[1], device, generator)
    sigmas = torch.where(chance(n, p, device, generator).view(-1, 1), sigmas,
                         torch.zeros_like(sigmas))
    offsets = torch.arange(-radius, radius + 1, device=device, dtype=images.dtype).view(1, -1)
    kernel = torch.exp(-0.5 * (offsets / sigmas.clamp(min=1e-3)) ** 2)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # sigma 0 → identity kernel
    kernel = kernel.repeat_interleave(c, dim=0)  # one kernel per (image, channel)
    x = images.reshape(1, n * c, h, w)
    x = F.pad(x, (radius, radius, 0, 0), mode="reflect")
    x = F.conv2d(x, kernel.view(n * c, 1, 1, -1), groups=n * c)
    x = F.pad(x, (0, 0, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(n * c, 1, -1, 1), groups=n * c)
    return x.view(n, c, h, w)


@dataclass
class SimCLRAugment:
    """The SimCLR view recipe: crop+resize, flip, colour jitter, grayscale, blur.

    Optional extras for drawn things (letters, symbols, diagrams): turning and slanting the
    crop, and changing stroke width; off here, on in the contrastive task's defaults.
    """

    crop_scale: tuple = (0.2, 1.0)
    jitter_strength: float = 0.5
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_p: float = 0.5
    degrees: float = 0.0
    shear: float = 0.0
    stroke_p: float = 0.0

    def __call__(self, images: torch.Tensor, generator=None) -> torch.Tensor:
        s = self.jitter_strength
        x = random_resized_crop(images, scale=self.crop_scale, degrees=self.degrees,
                                shear=self.shear, generator=generator)
        if self.stroke_p > 0:
            x = stroke_width(x, self.stroke_p, generator=generator)
        x = color_jitter(x, 0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s, p=self.jitter_p,
                         generator=generator)
        x = random_grayscale(x, self.grayscale_p, generator=generator)
        if self.blur_p > 0:
            # sigma range 0.1–2.0 was chosen for 224 px images; scale it to ours
            top = max(0.2, 2.0 * images.shape[-1] / 224)
            x = gaussian_blur(x, sigma=(0.1, top), p=self.blur_p, generator=generator)
        return x.clamp(0, 1)
