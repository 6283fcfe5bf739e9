"""The few-label methods: label propagation and semi-supervised self-training (semi)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sslstudio.train.downstream import ClassifierOptions, fit_classifier, recommend_method
from sslstudio.train.downstream.inputs import Cancelled
from sslstudio.train.downstream.linear_probe import LinearProbe
from sslstudio.train.downstream.propagate import embed, fit_head, knn_graph, propagate
from sslstudio.train.downstream.semi import SemiHead, SemiSettings, strong_augment


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def curved_clusters(n_per_class: int = 100, seed: int = 0, stretch: float = 8.0):
    """Three classes in 32-D, each a long thin cloud along its own random direction: one
    labelled point per class says little about where its cloud lies (it may sit far out on
    the long axis), the unlabelled points trace it."""
    rng = np.random.default_rng(seed)
    feats, y = [], []
    for c in range(3):
        centre = rng.normal(0, 1, 32)
        direction = rng.normal(size=32)
        direction /= np.linalg.norm(direction)
        t = rng.normal(0, stretch, (n_per_class, 1))
        feats.append(centre + t * direction + rng.normal(0, 0.3, (n_per_class, 32)))
        y.append(np.full(n_per_class, c))
    return np.concatenate(feats).astype(np.float32), np.concatenate(y)


def few_labels(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False)
                           for c in np.unique(y)])


def test_propagation_follows_the_data_where_a_linear_probe_cannot():
    x, y = curved_clusters()
    accs_prop, accs_lin = [], []
    for seed in range(3):
        labelled = few_labels(y, 1, seed)
        rest = np.setdiff1d(np.arange(len(y)), labelled)
        scores = propagate(embed(x), labelled, y[labelled], 3)
        accs_prop.append(np.mean(scores[rest].argmax(1) == y[rest]))
        probe = LinearProbe(1.0, 3).fit(x[labelled], y[labelled])
        accs_lin.append(np.mean(probe.predict_proba(x[rest]).argmax(1) == y[rest]))
    # measured: propagation 1.00, linear probe 0.78
    assert np.mean(accs_prop) > 0.95
    assert np.mean(accs_prop) > np.mean(accs_lin) + 0.1


def style_clusters(n_styles: int = 20, n_classes: int = 4, per: int = 12, seed: int = 0):
    """Letters in many typefaces, in miniature: each point is a style (loud, 24 dimensions) plus
    its class (quiet, 8 dimensions). Nearest neighbours share a style, not a class, but one
    direction separates the classes linearly."""
    rng = np.random.default_rng(seed)
    styles = rng.normal(0, 3.0, (n_styles, 24))
    classes = rng.normal(0, 1.0, (n_classes, 8))
    feats, y = [], []
    for style in styles:
        for c in range(n_classes):
            feats.append(np.concatenate([style + rng.normal(0, 0.3, (per, 24)),
                                         classes[c] + rng.normal(0, 0.3, (per, 8))], 1))
            y.append(np.full(per, c))
    return np.concatenate(feats).astype(np.float32), np.concatenate(y)


@pytest.mark.parametrize("data, per_class", [("style", 5), ("curved", 2)])
def test_the_self_training_teacher_holds_where_either_propagation_or_a_probe_fails(data, per_class):
    from sslstudio.train.downstream.selftrain import teacher_scores

    x, y = style_clusters() if data == "style" else curved_clusters()
    accs, chosen = {}, []
    for share in (0.0, 0.5, 1.0, None):  # propagation alone, the blend, the probe, CV's choice
        per_seed = []
        for seed in range(3):
            labelled = few_labels(y, per_class, seed)
            rest = np.setdiff1d(np.arange(len(y)), labelled)
            _, scores, used = teacher_scores(x, labelled, y[labelled], len(np.unique(y)), share,
                                             seed=seed)
            assert (scores[labelled].argmax(1) == y[labelled]).all()
            np.testing.assert_allclose(scores.sum(1), 1.0, atol=1e-6)
            per_seed.append(np.mean(scores[rest].argmax(1) == y[rest]))
            if share is None:
                chosen.append(used)
        accs[share] = np.mean(per_seed)
    # measured: style 0.40 / 0.90 / 0.93 and CV picks 1.0; curved 1.00 / 1.00 / 0.81, picks 0.0
    weaker, best = min(accs[0.0], accs[1.0]), max(accs[0.0], accs[0.5], accs[1.0])
    assert accs[0.5] > best - 0.05 and accs[0.5] > weaker + 0.15
    assert accs[None] > best - 0.02          # cross-validation finds a share close to the best
    # ... and leans the right way: to the probe among styles, to the graph along curves
    assert all(c >= 0.5 for c in chosen) if data == "style" else all(c <= 0.5 for c in chosen)


def test_propagated_scores_are_probabilities_and_keep_the_given_labels():
    x, y = curved_clusters(40)
    labelled = few_labels(y, 3, 0)
    scores = propagate(embed(x), labelled, y[labelled], 4)   # a 4th class without labels
    np.testing.assert_allclose(scores.sum(1), 1.0, atol=1e-9)
    assert (scores >= 0).all() and np.all(scores[:, 3] == 0)
    assert (scores[labelled].argmax(1) == y[labelled]).all()
    graph = knn_graph(embed(x), 5, 3.0)
    assert abs(graph - graph.T).max() < 1e-6                    # symmetric


def test_propagation_head_is_a_linear_model_matching_its_probe():
    x, y = curved_clusters(40)
    labelled = few_labels(y, 2, 1)
    probe, _ = fit_head(x, labelled, y[labelled], 3)
    head = probe.torch_head()
    with torch.no_grad():
        probs = torch.softmax(head(torch.from_numpy(x)), 1).numpy()
    np.testing.assert_allclose(probs, probe.predict_proba(x), atol=1e-4)


def test_semi_head_learns_from_unlabelled_points_and_stays_class_balanced():
    rng = np.random.default_rng(0)
    # two overlapping blobs, a rare class (1:4); strong views = the same point with noise
    centres = np.array([[0.0] * 16, [1.2] + [0.0] * 15])
    y = np.array([0] * 200 + [1] * 50)
    weak = (centres[y] + rng.normal(0, 0.5, (len(y), 16))).astype(np.float32)
    strong = (weak[None] + rng.normal(0, 0.3, (3, *weak.shape))).astype(np.float32)
    labelled = np.array([0, 1, 200, 201])
    head = SemiHead(2, SemiSettings(steps=200)).fit(weak, strong, labelled, y[labelled])
    pred = head.predict_proba(weak).argmax(1)
    assert 0 < head.info["pseudo_labelled_fraction"] <= 1
    recall = [np.mean(pred[y == c] == c) for c in (0, 1)]
    assert min(recall) > 0.6                                 # the rare class is not swallowed
    linear = torch.softmax(head.torch_head()(torch.from_numpy(weak)), 1).detach().numpy()
    np.testing.assert_allclose(linear, head.predict_proba(weak), atol=1e-4)


def test_strong_augment_keeps_shape_and_range():
    x = torch.rand(5, 3, 16, 16)
    out = strong_augment(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert not torch.allclose(out, x)


# ---------------------------------------------------------------- through fit_classifier

def tiny_backbone():
    from sslstudio.models.backbones import create_backbone

    torch.manual_seed(0)
    return create_backbone("small_cnn", image_size=16)


def tiny_images(n: int = 24):
    rng = np.random.default_rng(0)
    classes = ["dark", "light"] * (n // 2)
    base = np.array([[40], [200]])[[0 if c == "dark" else 1 for c in classes]]
    images = np.clip(base[:, :, None, None] + rng.integers(-30, 30, (n, 16, 16, 3)), 0, 255)
    return images.astype(np.uint8), classes


@pytest.mark.parametrize("method", ["semi", "propagate"])
def test_few_label_methods_fit_validate_report_progress_and_export(tmp_path, method):
    from sslstudio.export.model_dir import load_model_dir, save_result

    images, classes = tiny_images()
    labels = {str(i): c for i, c in enumerate(classes) if i < 12}
    calls = []
    opts = ClassifierOptions(semi=SemiSettings(strong_views=2, steps=50))
    result = fit_classifier(tiny_backbone(), images, labels, method, opts,
                            progress=lambda d, t: calls.append((d, t)))
    assert result.method == method and result.model.head_kind == "linear"
    assert result.model.flip_average
    assert result.metrics["scheme"].startswith("stratified")
    assert result.metrics["n"] == 12                          # every label validated once
    assert len(result.predictions) == 12
    assert calls and calls[-1][0] == calls[-1][1]
    assert all(a[0] / a[1] <= b[0] / b[1] + 1e-9 for a, b in zip(calls, calls[1:]))
    save_result(tmp_path / "model", result, 16)
    model, card = load_model_dir(tmp_path / "model")
    assert card["method"] == method
    x = torch.from_numpy(images[12:]).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        torch.testing.assert_close(model(x), result.model(x), atol=1e-5, rtol=1e-4)
        expected = np.array([p.probabilities for p in sorted(result.predictions,
                                                              key=lambda p: int(p.id))])
        np.testing.assert_allclose(result.model(x).numpy(), expected, atol=1e-4)


@pytest.mark.parametrize("method, feature_share", [
    ("linear", 1 / 1.1),              # the probe's fit: a tenth of the features' time
    ("propagate", 1 / 1.25),          # the graph: a quarter
    ("semi", 48 / (48 + 96 + 96)),    # 4 strong views of 24 images, twice (views, head)
])
def test_the_features_take_their_share_of_the_bar(method, feature_share):
    """Stages fill the bar in proportion to their expected time (image passes), so that the
    time left read from the bar's speed holds from one stage to the next."""
    images, classes = tiny_images()
    labels = {str(i): c for i, c in enumerate(classes) if i < 12}
    torch.manual_seed(len(method))    # a backbone of its own: no features cached in memory
    from sslstudio.models.backbones import create_backbone

    calls = []
    fit_classifier(create_backbone("small_cnn", image_size=16), images, labels, method,
                   ClassifierOptions(semi=SemiSettings(strong_views=4, steps=20)),
                   progress=lambda d, t: calls.append((d, t)))
    # the features (24 images and their mirror images) end exactly at their share
    assert any(abs(d / t - feature_share) < 1e-3 for d, t in calls), calls


def test_self_training_trains_the_network_validates_honestly_and_exports(tmp_path):
    from sslstudio.export.model_dir import load_model_dir, save_result
    from sslstudio.train.downstream.selftrain import SelfTrainSettings

    images, classes = tiny_images()
    labels = {str(i): c for i, c in enumerate(classes) if i < 12}
    backbone = tiny_backbone()
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    calls = []
    opts = ClassifierOptions(selftrain=SelfTrainSettings(min_steps=12, batch_size=8,
                                                         labelled_batch=8))
    result = fit_classifier(backbone, images, labels, "selftrain", opts,
                            progress=lambda d, t: calls.append((d, t)))
    # the caller's backbone is untouched; the classifier's own copy has trained
    assert all(torch.equal(before[k], v) for k, v in backbone.state_dict().items())
    changed = [k for k, v in result.model.backbone.state_dict().items()
               if v.is_floating_point() and not torch.equal(before[k], v)]
    assert changed
    assert result.model.flip_average and result.info["steps"] >= 12
    # one fold of the k-fold plan is scored, by a model trained without those labels
    assert "1 fold scored" in result.metrics["scheme"]
    assert 0 < result.metrics["n"] < 12
    assert set(result.validation_truth) <= set(labels)
    assert calls and calls[-1][0] == calls[-1][1]
    assert all(a[0] / a[1] <= b[0] / b[1] + 1e-9 for a, b in zip(calls, calls[1:]))
    # the bar moves in proportion to the work: the features (24 images and their mirror
    # images) are a sliver of it beside two trainings of 8 + 8 images a step, not a third,
    # so it never jumps by more than a few steps' worth
    shares = [0.0] + [d / t for d, t in calls]
    assert max(b - a for a, b in zip(shares, shares[1:])) < 3 / (2 * result.info["steps"])
    # the two brightness classes are easy: the unlabelled images come out right
    truth = {str(i): c for i, c in enumerate(classes)}
    assert np.mean([truth[p.id] == p.label for p in result.predictions]) >= 0.9
    save_result(tmp_path / "model", result, 16)
    model, card = load_model_dir(tmp_path / "model")
    assert card["method"] == "selftrain"
    x = torch.from_numpy(images[12:]).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        torch.testing.assert_close(model(x), result.model(x), atol=1e-5, rtol=1e-4)


def test_selftrain_scores_its_fold_on_a_network_trained_half_as_long(monkeypatch):
    """The validation fold is a second whole training: at half length the fit takes a
    quarter less time, and the scheme the user reads says so."""
    from dataclasses import replace

    from sslstudio.train.downstream import selftrain
    from sslstudio.train.downstream.selftrain import SelfTrainSettings

    images, classes = tiny_images()
    labels = {str(i): c for i, c in enumerate(classes) if i < 12}
    trained_steps = []
    real_self_train = selftrain.self_train

    def counting_self_train(*args, **kwargs):
        model, trained = real_self_train(*args, **kwargs)
        trained_steps.append(trained["steps"])
        return model, trained

    monkeypatch.setattr(selftrain, "self_train", counting_self_train)
    settings = SelfTrainSettings(epochs=20, min_steps=4, batch_size=4, labelled_batch=4)
    result = fit_classifier(tiny_backbone(), images, labels, "selftrain",
                            ClassifierOptions(selftrain=settings))
    fold_steps, final_steps = trained_steps
    # 20 passes over the 12 unlabelled images for the final network; 10 for the fold's,
    # whose held-out labels are unlabelled images to it
    assert final_steps == result.info["steps"] == selftrain.steps_for(12, settings) == 60
    held_out = result.metrics["n"]
    assert fold_steps == selftrain.steps_for(12 + held_out, replace(settings, epochs=10))
    assert fold_steps < final_steps
    assert "half as long as the final one" in result.metrics["scheme"]


def test_selftrain_runs_in_bf16_where_the_cpu_has_it_and_float32_on_request():
    from sslstudio.train.device import native_cpu_bf16
    from sslstudio.train.downstream.selftrain import SelfTrainSettings

    images, classes = tiny_images()
    labels = {str(i): c for i, c in enumerate(classes) if i < 12}
    truth = {str(i): c for i, c in enumerate(classes)}
    for precision, expected in (("auto", "bfloat16" if native_cpu_bf16() else "float32"),
                                ("float32", "float32")):
        settings = SelfTrainSettings(min_steps=12, batch_size=8, labelled_batch=8,
                                     precision=precision)
        result = fit_classifier(tiny_backbone(), images, labels, "selftrain",
                                ClassifierOptions(device="cpu", validate=False,
                                                  selftrain=settings))
        assert result.info["precision"] == expected
        assert np.mean([truth[p.id] == p.label for p in result.predictions]) >= 0.9, precision


def test_selftrain_without_mirroring_tells_mirror_image_classes_apart():
    """Classes that are each other's mirror image (left / right arrows): with mirroring on,
    the model averages each image with its mirror and cannot tell them apart; with
    augment_average=False no view is ever mirrored and the classes separate."""
    from sslstudio.train.downstream.selftrain import SelfTrainSettings

    rng = np.random.default_rng(0)
    n = 32
    left = np.zeros((n // 2, 16, 16, 3), np.int64)
    left[:, :, :6] = 220                                    # bright band at the left edge
    left = np.clip(left + rng.integers(0, 30, left.shape), 0, 255)
    images = np.concatenate([left, left[:, :, ::-1]]).astype(np.uint8)
    classes = ["left"] * (n // 2) + ["right"] * (n // 2)
    labels = {str(i): classes[i] for i in (0, 1, 2, 3, 16, 17, 18, 19)}
    truth = {str(i): c for i, c in enumerate(classes)}
    settings = SelfTrainSettings(epochs=4, min_steps=20, batch_size=8, labelled_batch=8)
    accuracy = {}
    for mirror in (True, False):
        result = fit_classifier(tiny_backbone(), images, labels, "selftrain",
                                ClassifierOptions(augment_average=mirror, validate=False,
                                                  selftrain=settings))
        assert result.model.flip_average is mirror
        accuracy[mirror] = np.mean([truth[p.id] == p.label for p in result.predictions])
    assert accuracy[False] >= 0.9
    assert accuracy[True] <= 0.6      # an image and its mirror get the same prediction


def test_augmentations_do_not_mirror_when_told_not_to():
    from sslstudio.train.downstream.finetune import augment_batch

    x = torch.zeros(64, 3, 16, 16)
    x[..., :4] = 1.0                                         # bright at the left
    gen = torch.Generator().manual_seed(0)
    for mirror, expect_some_mirrored in ((True, True), (False, False)):
        for out in (augment_batch(x, gen, mirror), strong_augment(x, gen, mirror)):
            mirrored = out[..., -3:].mean(dim=(1, 2, 3)) > out[..., :3].mean(dim=(1, 2, 3))
            assert bool(mirrored.any()) is expect_some_mirrored


@pytest.mark.parametrize("method", ["semi", "propagate", "selftrain"])
def test_few_label_methods_can_be_cancelled(method):
    images, classes = tiny_images()
    labels = {str(i): c for i, c in enumerate(classes) if i < 12}
    with pytest.raises(Cancelled):
        fit_classifier(tiny_backbone(), images, labels, method, cancel=lambda: True)


def test_recommendation_prefers_a_few_label_method_with_few_labels():
    method, reason = recommend_method(30, 3, "cpu")
    assert method == "selftrain" and "30 labels" in reason
    assert recommend_method(20000, 10, "cuda")[0] == "finetune"


def test_classify_command_accepts_the_new_methods():
    import argparse

    from sslstudio.commands.classify import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    for method in ("semi", "propagate", "selftrain"):
        args = parser.parse_args(["F", "--run", "R", "--labels", "l.csv", "--out", "O",
                                  "--method", method])
        assert args.method == method


def test_first_suggestions_are_typical_images_of_each_group():
    from sslstudio.project.suggest import representative_sample, suggest_next

    rng = np.random.default_rng(0)
    centres = np.eye(4, 16) * 5
    points = np.concatenate([c + rng.normal(0, 0.3, size=(30, 16)) for c in centres])
    points = np.concatenate([points, rng.normal(0, 8, size=(4, 16))])     # a few outliers
    cluster = np.concatenate([np.repeat(np.arange(4), 30), np.full(4, -1)])
    picked = representative_sample(points, 4, seed=1)
    assert sorted(cluster[picked]) == [0, 1, 2, 3]                       # no outlier picked
    relpaths = [f"{i}.png" for i in range(len(points))]
    embeddings = dict(zip(relpaths, points))
    chosen, strategy = suggest_next(relpaths, {}, 4, embeddings=embeddings)
    assert strategy == "representative" and len(chosen) == 4
    # the next round goes to the groups no label reaches yet, again not to the outliers
    labels = {"0.png": "a", "30.png": "b"}                    # groups 0 and 1 are labelled
    chosen, strategy = suggest_next(relpaths, labels, 2, embeddings=embeddings)
    assert strategy == "representative"
    assert sorted(cluster[[relpaths.index(r) for r in chosen]]) == [2, 3]
    rows = representative_sample(points, 2, seed=1, covered=[0, 30])
    assert sorted(cluster[rows]) == [2, 3]
    # more picks than free groups: the rest never repeats a label or a pick
    rows = representative_sample(points, 10, seed=1, covered=[0, 30, 60, 90])
    assert len(set(rows)) == 10 and not set(rows) & {0, 30, 60, 90}


def test_a_suggestion_comes_from_the_dense_part_of_its_cluster_not_its_centroid():
    from sslstudio.project.suggest import representative_sample

    # with one pick there are two k-means clusters: the far group, and the two near groups
    # together with one stray image exactly between them. The stray is nearest that
    # cluster's centroid but typical of nothing.
    rng = np.random.default_rng(0)

    def group(centre, n):
        return np.array(centre + [0.0] * 5) + rng.normal(0, 0.01, size=(n, 8))

    points = np.concatenate([group([1.0, 0.2, 0.0], 60), group([1.0, -0.2, 0.0], 60),
                             group([0.0, 0.0, 1.0], 100), [[1.0, 0.0] + [0.0] * 6]])
    for seed in range(5):
        (picked,) = representative_sample(points, 1, seed=seed)
        assert picked < 120                       # one of the two near groups, not the stray
