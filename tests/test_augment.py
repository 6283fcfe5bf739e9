"""Batch augmentations: ranges, per-sample randomness, reproducibility, identities."""
from __future__ import annotations

import torch

from sslstudio.pretext.augment import (SimCLRAugment, color_jitter, gaussian_blur, grayscale,
                                       horizontal_flip, random_grayscale, random_resized_crop,
                                       stroke_width)


def images(n=8, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g)


def test_simclr_views_are_valid_and_reproducible():
    x = images()
    a = SimCLRAugment()(x, torch.Generator().manual_seed(1))
    b = SimCLRAugment()(x, torch.Generator().manual_seed(1))
    c = SimCLRAugment()(x, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_parameters_differ_per_sample():
    same = images(1).expand(6, -1, -1, -1).contiguous()
    out = random_resized_crop(same, scale=(0.2, 0.5), generator=torch.Generator().manual_seed(0))
    for i in range(6):
        for j in range(i):
            assert not torch.allclose(out[i], out[j], atol=1e-3)


def test_full_crop_is_identity_and_flip_mirrors():
    x = images()
    kept = random_resized_crop(x, scale=(1, 1), ratio=(1, 1), flip_p=0.0)
    assert torch.allclose(kept, x, atol=1e-4)
    mirrored = random_resized_crop(x, scale=(1, 1), ratio=(1, 1), flip_p=1.0)
    assert torch.allclose(mirrored, x.flip(3), atol=1e-4)
    assert torch.equal(horizontal_flip(x, p=1.0), x.flip(3))
    assert torch.equal(horizontal_flip(x, p=0.0), x)


def _centroid(batch):
    """Centre of the bright mass of each image, in pixels from the image centre (x, y)."""
    weight = batch[:, 0]
    size = batch.shape[-1]
    coords = torch.arange(size, dtype=batch.dtype) - (size - 1) / 2
    total = weight.sum(dim=(1, 2))
    return (weight.sum(1) @ coords) / total, (weight.sum(2) @ coords) / total


def test_turning_moves_a_spot_around_the_centre_and_slanting_moves_it_sideways():
    spot = torch.zeros(16, 3, 33, 33)
    spot[:, :, 9:12, 15:18] = 1.0  # a bright 3×3 spot 6 px above the centre (its mirror
    # image in the reflection padding stays outside the turned frame)
    g = torch.Generator().manual_seed(0)
    turned = random_resized_crop(spot, scale=(1, 1), ratio=(1, 1), flip_p=0.0, degrees=40,
                                 generator=g)
    x, y = _centroid(turned)
    radius = (x ** 2 + y ** 2).sqrt()
    assert torch.allclose(radius, torch.full_like(radius, 6.0), atol=0.6)  # a turn keeps it
    angles = torch.rad2deg(torch.atan2(x, -y)).abs()
    assert angles.max() <= 41 and angles.max() > 20 and len(set(angles.round().tolist())) > 8
    slanted = random_resized_crop(spot, scale=(1, 1), ratio=(1, 1), flip_p=0.0, shear=20,
                                  generator=g)
    x, y = _centroid(slanted)
    assert torch.allclose(y, torch.full_like(y, -6.0), atol=0.6)  # height is kept
    shift = x.abs()
    assert shift.max() > 1.0 and shift.max() <= 6 * 0.37 + 0.3  # tan(20°) ≈ 0.36


def test_stroke_width_makes_a_thin_line_bold_or_erases_it():
    page = torch.ones(64, 3, 16, 16)
    page[:, :, 2:14, 8] = 0.0  # a one-pixel dark stroke on white
    out = stroke_width(page, p=1.0, generator=torch.Generator().manual_seed(0))
    ink = (out[:, 0] < 0.5).sum(dim=(1, 2))
    assert set(ink.tolist()) == {0, 14 * 3}  # erased, or 3 px wide and a pixel longer each end
    assert 10 < int((ink == 0).sum()) < 54
    assert torch.equal(stroke_width(page, p=0.0), page)


def test_crop_resizes_to_the_requested_size():
    assert random_resized_crop(images(size=64), size=24).shape == (8, 3, 24, 24)


def test_colour_ops():
    x = images()
    assert torch.equal(color_jitter(x, p=0.0), x)
    jittered = color_jitter(x, p=1.0, generator=torch.Generator().manual_seed(0))
    assert jittered.min() >= 0 and jittered.max() <= 1 and not torch.allclose(jittered, x)
    hue_only = color_jitter(x, 0, 0, 0, hue=0.5, p=1.0)
    # a hue rotation keeps luma (up to clipping)
    assert (grayscale(hue_only) - grayscale(x)).abs().mean() < 0.05
    gray = random_grayscale(x, p=1.0)
    assert torch.allclose(gray[:, 0], gray[:, 1]) and torch.allclose(gray[:, 1], gray[:, 2])


def test_blur_smooths_and_zero_probability_is_identity():
    x = images(size=64)
    assert torch.allclose(gaussian_blur(x, p=0.0), x, atol=1e-6)
    blurred = gaussian_blur(x, sigma=(1.5, 2.0), p=1.0)
    assert blurred.shape == x.shape and blurred.std() < 0.7 * x.std()
