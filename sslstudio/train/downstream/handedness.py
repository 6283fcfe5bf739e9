"""Do the images have a handedness, like text and digits, so that mirroring them hurts?

By default the classifier stage averages each image's features with its mirror
image's and trains on mirrored views. That is right for photos, where a mirrored
scene is just as likely as the original (self-training on tiles of 14 photos: 84.1%
mirrored, 82.5% not), and wrong for handwriting and print:
on MNIST, self-training without any mirroring reached 97.2% against 95.2%
(docs/benchmarks-classifier.md, "Mirroring and handed images").

The test needs no labels. Each image, shrunk to 16×16 grey, is compared with its
nearest neighbour among the other images, and so is its mirror image. Where
the images as a whole are mirror-symmetric, a mirrored image is as close to the
others as an original, so about half of the mirrored images end up farther than
their originals (0.49 for tiles of 20 natural photos). Where they are handed, a
mirrored image looks like no image in the folder: 0.95 of them farther on
MNIST, 0.82–0.86 on printed letters, 0.72–0.77 on the built-in sample's drawings.

Copies of an image (saved twice, re-encoded) count once. Near-copies that are not
the same picture, such as burst shots or video frames a few pixels apart, still make
a folder look handed (0.93 for 200 photo tiles shot three times each), so the user can
force mirroring on (classify --mirror on, the Classifier page's Mirror images choice).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from sslstudio.train.downstream.inputs import ImageSet

# mirroring stays on below this share of mirrored images that lie farther from the others
HANDED_SHARE = 0.8
SAMPLE = 1000        # images compared (the share grows a little with the sample: fixed)
MIN_IMAGES = 50      # fewer distinct images say too little: mirroring stays on
SIDE = 16
# at 16×16 grey, copies of one image (saved twice, re-encoded, resized) are this alike
COPY_SIMILARITY = 0.97


def mirrored_farther_share(image_set: ImageSet, seed: int = 0) -> float | None:
    """The share of (up to SAMPLE) distinct images whose mirror image lies farther from its
    nearest other image than the image itself does; None for fewer than MIN_IMAGES."""
    n = len(image_set)
    if n < MIN_IMAGES:
        return None
    rows = np.sort(np.random.default_rng(seed).choice(n, size=min(n, SAMPLE), replace=False))
    grey = image_set.tensor(rows).mean(1, keepdim=True)
    small = F.interpolate(grey, size=(SIDE, SIDE), mode="area").flatten(1)
    mirrored = F.interpolate(grey.flip(3), size=(SIDE, SIDE), mode="area").flatten(1)

    def unit(x: torch.Tensor) -> torch.Tensor:
        x = x - x.mean(1, keepdim=True)
        return x / x.norm(dim=1, keepdim=True).clamp(min=1e-6)

    small, mirrored = unit(small), unit(mirrored)
    # A copy is always nearer than any mirror image, so a folder holding each photo twice
    # would look handed: keep the first of each group of copies.
    similar = small @ small.T
    distinct = ~similar.triu(1).ge(COPY_SIMILARITY).any(0)
    if int(distinct.sum()) < MIN_IMAGES:
        return None
    # both from products of the same shape, so that a symmetric image's mirror ties exactly
    similar = similar[distinct][:, distinct]
    mirror_similar = (mirrored @ small.T)[distinct][:, distinct]
    itself = torch.eye(len(similar), dtype=torch.bool)
    nearest = similar.masked_fill(itself, -2).max(1).values
    nearest_of_mirror = mirror_similar.masked_fill(itself, -2).max(1).values
    return float((nearest_of_mirror < nearest).float().mean())


def decide_mirror(image_set: ImageSet, seed: int = 0) -> tuple[bool, str | None]:
    """(whether to mirror, a note for the user when the images' handedness turned it off)."""
    share = mirrored_farther_share(image_set, seed)
    if share is None or share < HANDED_SHARE:
        return True, None
    return False, (f"images not mirrored: {share:.0%} of mirrored images look less like the "
                   f"others than the originals do (handed images, like text and digits, "
                   f"lose by mirroring); for photos, choose Mirror images: Always "
                   f"(classify --mirror on)")
