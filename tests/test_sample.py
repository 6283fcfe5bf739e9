"""The built-in sample dataset: deterministic, idempotent, labels kept aside, classes distinct."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from PIL import Image

from sslstudio.cli import main
from sslstudio.data import Cancelled
from sslstudio.data.sample import (CLASSES, TRUTH_FILE, generate_sample_dataset,
                                   sample_is_complete, sample_truth)
from sslstudio.data.scan import scan_folder

PER_CLASS = 40
SIZE = 32


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory):
    return generate_sample_dataset(tmp_path_factory.mktemp("sample") / "images",
                                   n_per_class=PER_CLASS, size=SIZE, seed=0)


def _pixels(folder, names):
    return np.stack([np.asarray(Image.open(folder / n), np.float32) / 255 for n in names])


def test_truth_is_hidden_balanced_and_matches_the_scan(sample_dir):
    truth = sample_truth(sample_dir)
    scan = scan_folder(sample_dir, check_headers=True)
    assert [e.relpath for e in scan.images] == sorted(truth)  # the truth file itself is skipped
    assert scan.bad == [] and (sample_dir / TRUTH_FILE).is_file()
    assert Counter(truth.values()) == {c: PER_CLASS for c in CLASSES}
    assert not any(c in name for name in truth for c in CLASSES)  # names leak no label
    assert Image.open(sample_dir / next(iter(truth))).size == (SIZE, SIZE)
    assert sample_is_complete(sample_dir)


def test_same_seed_same_bytes_other_seed_other_pictures(sample_dir, tmp_path):
    again = generate_sample_dataset(tmp_path / "again", n_per_class=PER_CLASS, size=SIZE, seed=0)
    other = generate_sample_dataset(tmp_path / "other", n_per_class=PER_CLASS, size=SIZE, seed=1)
    names = sorted(sample_truth(sample_dir))
    assert all((again / n).read_bytes() == (sample_dir / n).read_bytes() for n in names)
    assert sample_truth(again) == sample_truth(sample_dir)
    differ = sum((other / n).read_bytes() != (sample_dir / n).read_bytes() for n in names)
    assert differ > 0.9 * len(names)


def test_generation_is_idempotent_and_repairs_a_missing_file(tmp_path):
    dest = generate_sample_dataset(tmp_path / "s", n_per_class=3, size=SIZE)
    victim = sorted(sample_truth(dest))[4]
    original = (dest / victim).read_bytes()
    mtimes = {p.name: p.stat().st_mtime_ns for p in dest.iterdir()}
    generate_sample_dataset(dest, n_per_class=3, size=SIZE)
    assert {p.name: p.stat().st_mtime_ns for p in dest.iterdir()} == mtimes  # nothing rewritten
    (dest / victim).unlink()
    assert not sample_is_complete(dest)
    generate_sample_dataset(dest, n_per_class=3, size=SIZE)
    assert (dest / victim).read_bytes() == original and sample_is_complete(dest)


def test_cancel_leaves_an_incomplete_dataset_that_resumes(tmp_path):
    with pytest.raises(Cancelled):
        generate_sample_dataset(tmp_path / "s", n_per_class=10, size=SIZE, cancel=lambda: True)
    assert not sample_is_complete(tmp_path / "s")
    generate_sample_dataset(tmp_path / "s", n_per_class=10, size=SIZE)
    assert sample_is_complete(tmp_path / "s")


def test_classes_differ_in_shape_not_in_one_global_colour(sample_dir):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import NearestCentroid

    truth = sample_truth(sample_dir)
    names = sorted(truth)
    labels = np.array([truth[n] for n in names])
    images = _pixels(sample_dir, names)
    train, test = slice(0, 160), slice(160, None)
    # A linear model on small pixels and edges tells the classes apart far above chance (1/6) ...
    n = len(names)
    small = images.reshape(n, 16, 2, 16, 2, 3).mean((2, 4)).reshape(n, -1)
    gy, gx = np.gradient(images.mean(-1), axis=(1, 2))
    edges = np.hypot(gx, gy).reshape(n, 16, 2, 16, 2).mean((2, 4)).reshape(n, -1)
    features = np.concatenate([small, 4 * edges], 1)
    model = LogisticRegression(max_iter=3000).fit(features[train], labels[train])
    assert (model.predict(features[test]) == labels[test]).mean() > 0.5
    # ... while the mean colour of the picture alone is close to useless.
    colour = images.mean((1, 2))
    colour_model = NearestCentroid().fit(colour[train], labels[train])
    assert (colour_model.predict(colour[test]) == labels[test]).mean() < 0.35


def test_sample_cli_writes_the_dataset(tmp_path, capsys):
    assert main(["sample", str(tmp_path / "cli"), "--per-class", "2", "--size", "32"]) == 0
    assert "12 images in 6 classes" in capsys.readouterr().out
    assert len(sample_truth(tmp_path / "cli")) == 12


def test_which_way_is_up_is_not_written_across_the_whole_picture(sample_dir):
    """Rotation must learn objects: the brightness profile from top to bottom (a sky
    gradient or a ground line in every picture) may not tell upright from upside down."""
    from sklearn.linear_model import LogisticRegression

    names = sorted(sample_truth(sample_dir))
    images = _pixels(sample_dir, names).mean(-1)  # N×H×W brightness
    flipped = images[:, ::-1, :]  # upside down
    profile = lambda x: x.mean(2)  # noqa: E731 - one brightness value per row
    features = np.concatenate([profile(images), profile(flipped)])
    upright = np.r_[np.ones(len(images)), np.zeros(len(images))]
    order = np.random.default_rng(0).permutation(len(features))
    features, upright = features[order], upright[order]
    half = len(features) // 2
    model = LogisticRegression(max_iter=3000).fit(features[:half], upright[:half])
    assert (model.predict(features[half:]) == upright[half:]).mean() < 0.8
