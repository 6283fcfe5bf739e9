"""Backbones: one way to create a model by name, one feature API for all of them.

Every backbone takes float N×3×S×S images in [0, 1] and normalises them itself
(ImageNet mean/std buffers), so no caller ever normalises and an exported model
sees exactly what the app sees.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

BACKBONES = ("small_cnn", "resnet18", "resnet34", "resnet50")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SMALL_STEM_BELOW = 96  # images smaller than this get a stride-1 stem and no max-pool


class WeightsError(ValueError):
    """Pretrained weights that cannot be found or do not fit the backbone."""


class Backbone(nn.Module):
    """A feature extractor: `forward_features` → N×C×h×w, `forward` → N×C pooled."""

    def __init__(self, name: str, body: nn.Module, num_features: int, stride: int,
                 image_size: int, small_stem: bool) -> None:
        super().__init__()
        self.name = name
        self.num_features = int(num_features)
        self.stride = int(stride)
        self.image_size = int(image_size)
        self.small_stem = bool(small_stem)
        self.body = body
        # Not persistent: they are constants, and weight files stay pure parameters.
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def config(self) -> dict:
        """What `create_backbone` needs to rebuild this architecture."""
        return {"name": self.name, "image_size": self.image_size, "small_stem": self.small_stem,
                "num_features": self.num_features, "stride": self.stride}

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.normalize(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x).mean(dim=(2, 3))


# ---------------------------------------------------------------------------- small CNN
def _conv_bn_relu(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class SmallCNN(nn.Sequential):
    """Four conv-BN-ReLU stages (32-64-128-256 channels, ~1.2M parameters): fast on a CPU.

    Each stage halves the resolution with a strided conv and refines with a second
    conv. The small stem keeps the first stage at full resolution (overall stride 8),
    which small images need to keep a usable spatial map; there the refining conv is
    left out, as it alone cost a quarter of the network's time.
    """

    WIDTHS = (32, 64, 128, 256)

    def __init__(self, small_stem: bool) -> None:
        layers: list[nn.Module] = []
        cin = 3
        for index, width in enumerate(self.WIDTHS):
            full_resolution = index == 0 and small_stem
            layers += _conv_bn_relu(cin, width, 1 if full_resolution else 2)
            if not full_resolution:
                layers += _conv_bn_relu(width, width)
            cin = width
        super().__init__(*layers)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")


# ---------------------------------------------------------------------------- ResNets
class ResNetBody(nn.Module):
    """A torchvision ResNet without its classifier; parameter names match torchvision's."""

    def __init__(self, name: str, small_stem: bool) -> None:
        super().__init__()
        import torchvision.models as tvm

        net = getattr(tvm, name)(weights=None)
        if small_stem:  # CIFAR-style: 3×3 stride-1 first conv, no max-pool
            net.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
            nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
            net.maxpool = nn.Identity()
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.num_features = net.fc.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


# ---------------------------------------------------------------------------- factory
def create_backbone(name: str, *, image_size: int = 64, small_stem: bool | None = None,
                    weights: str | Path | None = None) -> Backbone:
    """Build a backbone by name.

    small_stem: None picks it from the image size (True below 96 px).
    weights: a local .safetensors/.pth file, or "imagenet" for torchvision's weights
    when they are already in the local torch hub cache (never downloaded).
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    image_size = int(image_size)
    if image_size < 8:
        raise ValueError(f"image size {image_size} is too small (at least 8 pixels)")
    if small_stem is None:
        small_stem = image_size < SMALL_STEM_BELOW
    if name == "small_cnn":
        body: nn.Module = SmallCNN(small_stem)
        num_features, stride = SmallCNN.WIDTHS[-1], 8 if small_stem else 16
    else:
        body = ResNetBody(name, small_stem)
        num_features, stride = body.num_features, 8 if small_stem else 32
    backbone = Backbone(name, body, num_features, stride, image_size, small_stem)
    if weights is not None and str(weights) != "":
        load_pretrained(backbone, weights)
    return backbone


def load_pretrained(backbone: Backbone, weights: str | Path) -> None:
    """Load weights from a file or the local ImageNet cache into `backbone.body`."""
    if str(weights).lower() == "imagenet":
        path = imagenet_cache_path(backbone.name)
        source = f"ImageNet weights ({path})"
    else:
        path = Path(weights).expanduser()
        source = str(path)
        if not path.is_file():
            raise WeightsError(f"weights file not found: {path}")
    state = read_state_dict(path)
    state = _body_keys(state)
    own = backbone.body.state_dict()
    mismatched = [k for k in state if k in own and state[k].shape != own[k].shape]
    skippable = {"conv1.weight"} if backbone.small_stem else set()
    bad = [k for k in mismatched if k not in skippable]
    if bad:
        raise WeightsError(f"{source}: weights do not fit {backbone.name} "
                           f"(e.g. {bad[0]}: {tuple(state[bad[0]].shape)} vs {tuple(own[bad[0]].shape)})")
    for key in mismatched:  # the 7×7 ImageNet stem cannot serve the 3×3 small stem
        del state[key]
    missing = [k for k in own if k not in state and k not in mismatched
               and not k.endswith("num_batches_tracked")]
    if len(missing) > len(own) // 2 or not any(k in own for k in state):
        raise WeightsError(f"{source}: these weights are not for a {backbone.name} backbone "
                           f"({len(missing)} of {len(own)} tensors missing, e.g. {missing[:1]})")
    if missing:
        raise WeightsError(f"{source}: incomplete weights for {backbone.name}; missing {missing[:3]}")
    backbone.body.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from .safetensors, or a .pth/.pt file loaded without unpickling objects."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # damaged files raise many different types
        raise WeightsError(f"{path}: cannot read weights ({exc})") from exc
    if isinstance(state, dict):  # our checkpoints and common wrappers nest the weights
        for key in ("model", "state_dict", "backbone"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise WeightsError(f"{path}: not a file of named tensors")
    return state


def _body_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map names from torchvision, our Backbone, PretextModel or DDP files onto body names."""
    out = {}
    has_backbone = any(k.startswith(("backbone.", "module.backbone.")) for k in state)
    for key, value in state.items():
        if key.startswith("module."):
            key = key[len("module."):]
        if has_backbone:
            if not key.startswith("backbone."):
                continue  # a head of a pretext model
            key = key[len("backbone."):]
        if key.startswith("body."):
            key = key[len("body."):]
        if key.startswith("fc.") or key in ("mean", "std"):
            continue
        out[key] = value
    return out


def imagenet_cache_path(name: str) -> Path:
    """Where torchvision keeps the ImageNet weights of `name`; error when they are absent."""
    if name == "small_cnn":
        raise WeightsError("there are no ImageNet weights for small_cnn; "
                           "choose a ResNet or start from random weights")
    import torchvision.models as tvm

    enum = {"resnet18": tvm.ResNet18_Weights, "resnet34": tvm.ResNet34_Weights,
            "resnet50": tvm.ResNet50_Weights}[name]
    url = enum.IMAGENET1K_V1.url
    path = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    if not path.is_file():
        raise WeightsError(
            f"ImageNet weights for {name} are not in the local torch cache (looked for {path}). "
            f"SSL Studio never downloads at run time: copy the file there "
            f"(from {url}), or name a local weights file instead.")
    return path
