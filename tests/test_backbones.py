"""Backbones: shapes, the feature API, normalisation inside, weight files, ImageNet cache."""
from __future__ import annotations

import json

import pytest
import torch

from sslstudio.models import BACKBONES, WeightsError, create_backbone
from sslstudio.models.backbones import IMAGENET_MEAN, IMAGENET_STD, imagenet_cache_path
from sslstudio.models.io import load_backbone, save_backbone

FEATURES = {"small_cnn": 256, "resnet18": 512, "resnet34": 512, "resnet50": 2048}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("name", BACKBONES)
@pytest.mark.parametrize("size", [32, 64])
def test_shapes_and_feature_api(name, size):
    backbone = create_backbone(name, image_size=size).eval()
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        spatial = backbone.forward_features(x)
        pooled = backbone(x)
    assert backbone.name == name and backbone.num_features == FEATURES[name]
    assert backbone.small_stem  # both sizes are below 96 px
    assert spatial.shape == (2, FEATURES[name], size // backbone.stride, size // backbone.stride)
    assert pooled.shape == (2, FEATURES[name])
    assert torch.allclose(pooled, spatial.mean(dim=(2, 3)), atol=1e-5)


def test_small_stem_rule_and_override():
    assert create_backbone("resnet18", image_size=64).small_stem
    big = create_backbone("resnet18", image_size=128)
    assert not big.small_stem and big.stride == 32
    assert isinstance(big.body.maxpool, torch.nn.MaxPool2d)
    forced = create_backbone("small_cnn", image_size=128, small_stem=True)
    assert forced.small_stem and forced.stride == 8
    assert forced.forward_features(torch.rand(1, 3, 128, 128)).shape[-1] == 16


def test_normalisation_happens_inside():
    backbone = create_backbone("small_cnn", image_size=32).eval()
    x = torch.rand(2, 3, 32, 32)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(backbone.forward_features(x), backbone.body((x - mean) / std),
                              atol=1e-5)
    assert "mean" not in backbone.state_dict()  # constants stay out of weight files


def test_unknown_backbone_is_named():
    with pytest.raises(ValueError, match="unknown backbone 'vgg'"):
        create_backbone("vgg")


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    backbone = create_backbone("small_cnn", image_size=32)
    backbone.train()
    backbone(torch.rand(4, 3, 32, 32))  # move BN running stats away from their defaults
    backbone.eval()
    info = save_backbone(tmp_path / "run" / "backbone", backbone, {"pretext_task": "rotation"})
    assert (tmp_path / "run" / "backbone.safetensors").is_file()
    card = json.loads((tmp_path / "run" / "backbone.json").read_text())
    assert card == info and card["pretext_task"] == "rotation"
    for key in ("name", "image_size", "small_stem", "num_features"):
        assert key in card
    assert not [p for p in (tmp_path / "run").iterdir() if p.suffix == ".tmp"]
    loaded, config = load_backbone(tmp_path / "run" / "backbone")
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(backbone(x), loaded(x))
    assert config["num_features"] == 256 and loaded.small_stem


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_backbone(tmp_path / "missing")
    save_backbone(tmp_path / "b", create_backbone("small_cnn", image_size=32), {})
    (tmp_path / "b.safetensors").write_bytes(b"garbage")
    with pytest.raises(WeightsError, match="b.safetensors"):
        load_backbone(tmp_path / "b")


def test_weights_from_a_pth_file(tmp_path):
    source = create_backbone("resnet18", image_size=32).eval()
    torch.save({"model": {"backbone." + k: v for k, v in source.state_dict().items()},
                "step": 3}, tmp_path / "ckpt.pth")
    copy = create_backbone("resnet18", image_size=32, weights=tmp_path / "ckpt.pth").eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(source(x), copy(x))
    with pytest.raises(WeightsError, match="ckpt.pth: weights do not fit resnet50"):
        create_backbone("resnet50", image_size=32, weights=tmp_path / "ckpt.pth")
    with pytest.raises(WeightsError, match="not found"):
        create_backbone("resnet18", weights=tmp_path / "nope.pth")


def test_imagenet_without_cache_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(WeightsError, match="never downloads") as info:
        create_backbone("resnet18", weights="imagenet")
    assert str(tmp_path / "empty") in str(info.value)
    with pytest.raises(WeightsError, match="no ImageNet weights for small_cnn"):
        create_backbone("small_cnn", weights="imagenet")


def test_imagenet_from_the_local_cache(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    reference = torchvision.models.resnet18(weights=None).eval()
    target = tmp_path / "torch" / "hub" / "checkpoints"
    target.mkdir(parents=True)
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    torch.save(reference.state_dict(), target / url.rsplit("/", 1)[-1])
    assert imagenet_cache_path("resnet18").parent == target
    big = create_backbone("resnet18", image_size=128, weights="imagenet").eval()
    assert torch.equal(big.body.layer3[0].conv1.weight, reference.layer3[0].conv1.weight)
    small = create_backbone("resnet18", image_size=32, weights="imagenet")  # 3×3 stem kept
    assert small.body.conv1.weight.shape[-1] == 3
    assert torch.equal(small.body.layer1[0].conv1.weight, reference.layer1[0].conv1.weight)


def test_weights_for_another_architecture_are_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"conv.weight": torch.zeros(3, 3)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(WeightsError, match="other.safetensors: these weights are not for a small_cnn"):
        create_backbone("small_cnn", image_size=32, weights=tmp_path / "other.safetensors")
