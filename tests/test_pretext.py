"""Pretext tasks: batches, learning on a fixed tiny batch, previews, task-specific maths."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import CLASS_COLORS, draw_toy_image

from sslstudio.models import create_backbone
from sslstudio.pretext import TASKS, create_task
from sslstudio.pretext.base import PretextModel, PreviewImage
from sslstudio.pretext.colorization import (ab_bins, check_color, lab_to_rgb, rgb_to_lab)
from sslstudio.pretext.contrastive import nt_xent
from sslstudio.pretext.inpainting import FILL
from sslstudio.pretext.jigsaw import permutation_set

# Options that keep each task small enough for a fast test on 2 CPU cores.
FAST = {"jigsaw": {"permutations": 10, "tile_size": 16},
        "contrastive": {"crop_min": 0.5, "blur_p": 0.0, "stroke_p": 0.0},
        "contrastive_rotation": {"crop_min": 0.5, "blur_p": 0.0, "stroke_p": 0.0}}
# (steps, required ratio of final to initial loss): random views make contrastive noisier.
LEARNING = {"contrastive": (40, 0.9), "contrastive_rotation": (40, 0.9)}
SIZE = 32


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def toy_batch(n: int = 8, size: int = SIZE, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    classes = list(CLASS_COLORS)
    pictures = [np.asarray(draw_toy_image(classes[i % 3], rng, size)) for i in range(n)]
    return (torch.from_numpy(np.stack(pictures)).permute(0, 3, 1, 2).float() / 255).contiguous()


def build(name: str, seed: int = 0):
    torch.manual_seed(seed)
    task = create_task(name, **FAST.get(name, {}))
    backbone = create_backbone("small_cnn", image_size=SIZE)
    return task, PretextModel(task, backbone, task.build_head(backbone))


@pytest.mark.parametrize("name", list(TASKS))
def test_task_describes_itself(name):
    cls = TASKS[name]
    assert cls.name == name and cls.title and cls.metric_names
    assert cls.description.endswith(".") and len(cls.description) < 300
    for option in cls.options():
        assert option.help and option.coerce(option.default) == option.default
    assert set(create_task(name).config()) == {o.name for o in cls.options()}


@pytest.mark.parametrize("name", list(TASKS))
def test_fixed_batch_loss_goes_down(name):
    task, model = build(name)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    images = toy_batch()
    losses = []
    steps, ratio = LEARNING.get(name, (25, 0.85))
    for _ in range(steps):
        inputs, targets = task.make_batch(images)
        outputs = model(inputs)
        loss, metrics = task.loss(outputs, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        assert set(metrics) == set(task.metric_names)
        for value in metrics.values():  # floats or detached 0-dim tensors (no device sync)
            assert isinstance(value, float) or (torch.is_tensor(value) and value.dim() == 0
                                                and not value.requires_grad)
            assert np.isfinite(float(value))
    assert np.mean(losses[-5:]) < ratio * np.mean(losses[:5]), losses


@pytest.mark.parametrize("name", list(TASKS))
def test_preview_is_a_picture(name):
    task, model = build(name)
    model.eval()
    with torch.no_grad():
        inputs, targets = task.make_batch(toy_batch(6))
        outputs = model(inputs)
    pictures = task.preview(inputs, outputs, targets, max_items=4)
    assert pictures
    for picture in pictures:
        assert isinstance(picture, PreviewImage) and picture.title
        assert picture.image.dtype == np.uint8 and picture.image.ndim == 3
        h, w, c = picture.image.shape
        assert c == 3 and 64 <= h <= 2000 and 64 <= w <= 2000
        assert picture.image.std() > 5  # something is drawn, not a blank canvas


def test_options_are_checked_and_coerced():
    assert create_task("jigsaw", permutations="12").permutations == 12
    assert create_task("rotation", all_rotations="false").all_rotations is False
    with pytest.raises(TypeError, match="no option 'bogus'"):
        create_task("rotation", bogus=1)
    with pytest.raises(TypeError, match="must be one of"):
        create_task("inpainting", mask="triangle")
    with pytest.raises(TypeError, match="at least"):
        create_task("jigsaw", permutations=1)
    with pytest.raises(ValueError, match="unknown pretext task 'nope'"):
        create_task("nope")


def test_rotation_batch_holds_all_four_turns():
    images = toy_batch(3)
    inputs, targets = create_task("rotation").make_batch(images)
    assert inputs.shape == (12, 3, SIZE, SIZE)
    for k in range(4):
        assert torch.equal(inputs[3 * k:3 * k + 3], torch.rot90(images, k, dims=(2, 3)))
        assert (targets[3 * k:3 * k + 3] == k).all()
    inputs, targets = create_task("rotation", all_rotations=False).make_batch(images)
    for i in range(3):
        assert torch.equal(inputs[i], torch.rot90(images[i], int(targets[i]), dims=(1, 2)))


def test_jigsaw_permutations_are_far_apart_and_deterministic():
    perms = permutation_set(30, 0)
    assert np.array_equal(perms, permutation_set(30, 0))
    assert len({tuple(p) for p in perms}) == 30
    assert all(sorted(p) == list(range(9)) for p in perms.tolist())
    distance = (perms[:, None] != perms[None]).sum(-1) + np.eye(30, dtype=int) * 9
    assert distance.min() >= 6  # random picks would often differ in only 2 places


def test_jigsaw_slots_follow_the_permutation():
    task = create_task("jigsaw", permutations=10, grayscale_p=0.0, normalize_tiles=False)
    images = toy_batch(4)
    torch.manual_seed(3)
    tiles = task.cut_tiles(images)
    torch.manual_seed(3)
    inputs, targets = task.make_batch(images)
    assert inputs.shape == (4, 9, 3, 32, 32) and targets.max() < 10
    perms = torch.from_numpy(permutation_set(10, 0))
    for n in range(4):
        assert torch.equal(inputs[n], tiles[n, perms[targets[n]]])


@pytest.mark.parametrize("mask", ["center", "random_blocks", "irregular"])
def test_inpainting_masks_hide_only_the_mask(mask):
    task = create_task("inpainting", mask=mask)
    images = toy_batch(6)
    inputs, (truth, hidden) = task.make_batch(images)
    assert hidden.shape == (6, 1, SIZE, SIZE)
    assert set(hidden.unique().tolist()) <= {0.0, 1.0}
    share = hidden.mean(dim=(1, 2, 3))
    assert (share > 0.05).all() and (share < 0.6).all()
    keep = hidden.expand_as(images) == 0
    assert torch.equal(inputs[keep], images[keep]) and torch.equal(truth, images)
    fill = torch.tensor(FILL).view(1, 3, 1, 1).expand_as(images)
    assert torch.allclose(inputs[~keep], fill[~keep])


def test_lab_round_trip_and_known_colour():
    torch.manual_seed(0)
    rgb = torch.rand(4, 3, 16, 16)
    assert (lab_to_rgb(rgb_to_lab(rgb)) - rgb).abs().max() < 1e-3
    red = rgb_to_lab(torch.tensor([1.0, 0, 0]).view(1, 3, 1, 1)).flatten()
    assert torch.allclose(red, torch.tensor([53.24, 80.09, 67.20]), atol=0.05)
    assert 200 <= len(ab_bins(10)) <= 400


def test_colorization_refuses_grayscale_images():
    rng = np.random.default_rng(0)
    gray = np.repeat(rng.integers(0, 255, (20, 16, 16, 1), dtype=np.uint8), 3, axis=-1)
    message = check_color(gray)
    assert message and "colour images" in message and "grayscale" in message
    assert create_task("colorization").check_images(gray) == message
    colour = (toy_batch(8) * 255).byte().permute(0, 2, 3, 1).numpy()
    assert check_color(colour) is None
    assert TASKS["colorization"].requires_color


def test_colorization_rebalancing_favours_rare_colours():
    task = create_task("colorization")
    common = torch.zeros(1000, dtype=torch.long)
    weights = task.class_weights(common)
    assert weights[1] > 5 * weights[0]
    # prior-weighted mean weight is 1, so the loss scale does not depend on the data
    prior = task._fallback_counts / task._fallback_counts.sum()
    assert float((prior * weights).sum()) == pytest.approx(1.0, rel=1e-4)


def test_colorization_decodes_confident_bins_to_their_colour():
    task = create_task("colorization")
    bins = ab_bins(10)
    logits = torch.full((1, len(bins), 2, 2), -20.0)
    logits[0, 7] = 20.0
    ab = task.decode(logits)
    assert torch.allclose(ab[0, :, 0, 0], bins[7], atol=1e-3)


def test_nt_xent_rewards_matching_views():
    torch.manual_seed(0)
    z = torch.nn.functional.normalize(torch.randn(8, 32), dim=1)
    partner = (torch.arange(16) + 8) % 16
    good, _, logits = nt_xent(torch.cat([z, z]), partner, 0.2)
    bad, _, _ = nt_xent(torch.cat([z, z.roll(1, 0)]), partner, 0.2)
    assert (logits.argmax(1) == partner).all() and good < bad


def test_contrastive_rotation_batch_is_two_views_and_a_turned_copy():
    images = toy_batch(4)
    task = create_task("contrastive_rotation")
    inputs, (partner, turns) = task.make_batch(images)
    assert inputs.shape == (12, 3, SIZE, SIZE)
    assert torch.equal(partner, (torch.arange(8) + 4) % 8)   # the views pair up as in SimCLR
    for i in range(4):   # the last N are the images themselves, turned by `turns`
        assert torch.equal(inputs[8 + i], torch.rot90(images[i], int(turns[i]), dims=(1, 2)))
    _, model = build("contrastive_rotation")
    z, rotation_logits = model(inputs)
    assert z.shape[0] == 8 and rotation_logits.shape == (4, 4)


@pytest.mark.parametrize("name", ["rotation", "inpainting", "colorization", "contrastive",
                                  "contrastive_rotation"])
def test_channels_last_images_give_channels_last_inputs(name):
    images = toy_batch(4).contiguous(memory_format=torch.channels_last)
    inputs, _ = create_task(name).make_batch(images)
    assert inputs.is_contiguous(memory_format=torch.channels_last)
    plain, _ = create_task(name).make_batch(toy_batch(4))
    assert plain.is_contiguous()
