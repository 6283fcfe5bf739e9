"""Jigsaw puzzles (Noroozi & Favaro, ECCV 2016).

The image is cut into a 3×3 grid of tiles (with gaps and a random jitter, so
edges and exact positions give nothing away), the tiles are shuffled by one of a
fixed set of maximally different permutations, and the network must name the
permutation. A shared encoder (the backbone) sees each tile on its own; only the
head sees them together, so the backbone has to learn what parts look like.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sslstudio.pretext import previews
from sslstudio.pretext.augment import chance, grayscale, uniform
from sslstudio.pretext.base import PretextTask, PreviewImage, TaskOption, classification_loss

GRID = 3
TILES = GRID * GRID


@lru_cache(maxsize=8)
def permutation_set(count: int, seed: int = 0) -> np.ndarray:
    """`count` permutations of 9 tiles chosen greedily to maximise the minimal Hamming distance.

    Deterministic for a (count, seed) pair, so a checkpoint's class indices always
    mean the same shuffles.
    """
    all_perms = _all_permutations(TILES)
    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(len(all_perms)))]
    columns = [np.ascontiguousarray(all_perms[:, j]) for j in range(TILES)]
    min_distance = np.full(len(all_perms), TILES + 1, dtype=np.int8)
    matches = np.empty(len(all_perms), dtype=np.int8)
    for _ in range(count - 1):
        newest = all_perms[chosen[-1]]
        matches[:] = 0
        for j in range(TILES):  # column by column: ~30× faster than a 2-D compare and sum
            matches += columns[j] == newest[j]
        np.minimum(min_distance, TILES - matches, out=min_distance)
        best = np.flatnonzero(min_distance == min_distance.max())
        chosen.append(int(best[rng.integers(len(best))]))  # seeded tie-break
    return all_perms[chosen].astype(np.int64)


def _all_permutations(n: int) -> np.ndarray:
    """All n! permutations as an n!×n int8 array (built by insertion, far faster than tuples)."""
    perms = np.zeros((1, 0), dtype=np.int8)
    for item in range(n):
        width = perms.shape[1]
        grown = np.empty((perms.shape[0] * (width + 1), width + 1), dtype=np.int8)
        for position in range(width + 1):
            block = grown[position * perms.shape[0]:(position + 1) * perms.shape[0]]
            block[:, :position] = perms[:, :position]
            block[:, position] = item
            block[:, position + 1:] = perms[:, position:]
        perms = grown
    return perms


class JigsawHead(nn.Module):
    """Per-tile projection (shared), then all tiles together → permutation logits."""

    def __init__(self, in_features: int, classes: int, tile_dim: int = 256, hidden: int = 1024):
        super().__init__()
        self.tile = nn.Sequential(nn.Linear(in_features, tile_dim), nn.ReLU(inplace=True))
        self.classifier = nn.Sequential(
            nn.Linear(TILES * tile_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, classes))

    def forward(self, tile_features: torch.Tensor) -> torch.Tensor:  # N×9×C
        n = tile_features.shape[0]
        return self.classifier(self.tile(tile_features).reshape(n, -1))


class JigsawTask(PretextTask):
    name = "jigsaw"
    title = "Jigsaw puzzle"
    description = ("Each image is cut into 3×3 shuffled tiles and the network learns to put "
                   "them back in order, which teaches it what object parts look like.")
    metric_names = ("accuracy",)
    OPTIONS = (
        TaskOption("permutations", 100, "number of distinct shuffles to tell apart",
                   minimum=2, maximum=1000),
        TaskOption("gap", 0.25, "fraction of each grid cell left out around its tile "
                   "(hides edge continuity)", minimum=0.0, maximum=0.6, label="Gap between tiles"),
        TaskOption("tile_size", 0, "pixels of each tile given to the backbone (0: automatic, "
                   "at least 32)", minimum=0, maximum=512),
        TaskOption("normalize_tiles", True, "standardise each tile on its own, so brightness "
                   "and colour cast of neighbours are no clue"),
        TaskOption("grayscale_p", 0.3, "chance that a tile is shown in gray (against "
                   "chromatic-aberration shortcuts)", minimum=0.0, maximum=1.0),
        TaskOption("seed", 0, "seed of the permutation set", label="Shuffle set seed"),
    )

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self._perms_cpu = torch.from_numpy(permutation_set(self.permutations, self.seed))
        self._perms: dict[torch.device, torch.Tensor] = {}

    def perms(self, device) -> torch.Tensor:
        device = torch.device(device)
        if device not in self._perms:
            self._perms[device] = self._perms_cpu.to(device)
        return self._perms[device]

    def tile_pixels(self, image_size: int) -> int:
        if self.tile_size:
            return self.tile_size
        crop = int(image_size / GRID * (1 - self.gap))
        return max(32, crop)

    def build_head(self, backbone: nn.Module) -> nn.Module:
        return JigsawHead(backbone.num_features, self.permutations)

    def cut_tiles(self, images: torch.Tensor) -> torch.Tensor:
        """N×3×S×S → N×9×3×T×T: jittered crops inside each grid cell, resized to T."""
        n, c, s, _ = images.shape
        device, dtype = images.device, images.dtype
        size = self.tile_pixels(s)
        cell = 2.0 / GRID                      # cell side in normalised [-1, 1] coordinates
        crop = cell * (1 - self.gap)           # tile side
        slack = cell - crop                    # room for jitter inside the cell
        rows, cols = torch.meshgrid(torch.arange(GRID, device=device),
                                    torch.arange(GRID, device=device), indexing="ij")
        left = -1 + cols.reshape(1, TILES).to(dtype) * cell
        top = -1 + rows.reshape(1, TILES).to(dtype) * cell
        cx = left + uniform((n, TILES), 0, slack, device).to(dtype) + crop / 2
        cy = top + uniform((n, TILES), 0, slack, device).to(dtype) + crop / 2
        theta = torch.zeros(n * TILES, 2, 3, device=device, dtype=dtype)
        theta[:, 0, 0] = crop / 2
        theta[:, 1, 1] = crop / 2
        theta[:, 0, 2] = cx.reshape(-1)
        theta[:, 1, 2] = cy.reshape(-1)
        grid = F.affine_grid(theta, (n * TILES, c, size, size), align_corners=False)
        source = images.repeat_interleave(TILES, dim=0)
        tiles = F.grid_sample(source, grid, mode="bilinear", padding_mode="border",
                              align_corners=False)
        return tiles.view(n, TILES, c, size, size)

    def make_batch(self, images: torch.Tensor):
        n = images.shape[0]
        tiles = self.cut_tiles(images)
        flat = tiles.flatten(0, 1)
        if self.grayscale_p > 0:
            gray = chance(flat.shape[0], self.grayscale_p, flat.device).view(-1, 1, 1, 1)
            flat = torch.where(gray, grayscale(flat).expand_as(flat), flat)
        if self.normalize_tiles:
            # moments from sums: far faster on CPU than Tensor.std over many small tiles
            mean = flat.mean(dim=(2, 3), keepdim=True)
            var = (flat.square().mean(dim=(2, 3), keepdim=True) - mean.square()).clamp(min=0)
            flat = ((flat - mean) / (var.sqrt() + 0.02) * 0.2 + 0.45).clamp(0, 1)
        tiles = flat.view_as(tiles)
        targets = torch.randint(0, self.permutations, (n,), device=images.device)
        order = self.perms(images.device)[targets]                 # N×9: slot j shows tile order[j]
        shuffled = tiles[torch.arange(n, device=images.device).unsqueeze(1), order]
        return shuffled.contiguous(), targets

    def forward(self, backbone, head, inputs):
        n = inputs.shape[0]
        tiles = inputs.flatten(0, 1)                                 # all tiles as one batch
        weight = next(backbone.parameters())
        if weight.dim() == 4 and weight.is_contiguous(memory_format=torch.channels_last):
            tiles = tiles.contiguous(memory_format=torch.channels_last)  # match the model
        features = backbone(tiles)
        return head(features.view(n, TILES, -1))

    def loss(self, outputs, targets):
        return classification_loss(outputs, targets)

    def preview(self, inputs, outputs, targets, max_items: int = 8) -> list[PreviewImage]:
        count = min(max_items, inputs.shape[0])
        probs = outputs.detach().float().softmax(1).cpu()
        perms = self._perms_cpu
        cells = []
        for index in range(count):
            tiles = [previews.enlarge(t, 32) for t in previews.to_uint8(inputs[index])]  # shuffled
            guess, truth = int(probs[index].argmax()), int(targets[index])
            puzzles = [_assemble(tiles), _assemble(_put_back(tiles, perms[guess])),
                       _assemble(_put_back(tiles, perms[truth]))]
            picture = previews.hstack(puzzles, gap=10)
            ok = guess == truth
            caption = ("shuffled | put back as predicted | true order\n"
                       f"{'correct' if ok else 'wrong'} (confidence {probs[index, guess]:.0%})")
            cells.append(previews.Cell(picture, caption, previews.GOOD if ok else previews.BAD))
        grid = previews.grid(cells, columns=2, gap=8, caption_lines=2)
        return [PreviewImage("Shuffled tiles and the predicted order", grid)]


def _put_back(tiles: list[np.ndarray], order: torch.Tensor) -> list[np.ndarray]:
    """Undo a shuffle: slot j shows tile order[j], so tile order[j] goes back to place order[j]."""
    restored: list = [None] * TILES
    for slot, tile_index in enumerate(order.tolist()):
        restored[tile_index] = tiles[slot]
    return restored


def _assemble(tiles: list[np.ndarray], gap: int = 2) -> np.ndarray:
    rows = [previews.hstack(tiles[r * GRID:(r + 1) * GRID], gap) for r in range(GRID)]
    spacer = np.full((gap, rows[0].shape[1], 3), previews.BACKGROUND, np.uint8)
    return np.concatenate([rows[0], spacer, rows[1], spacer, rows[2]], axis=0)

