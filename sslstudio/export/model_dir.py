"""The classifier model folder: MODEL_DIR/model.safetensors + MODEL_DIR/model.json.

The JSON describes everything needed to rebuild the module (backbone name and
size, head kind and shape) plus what a user of the model must know (classes,
input, preprocessing, metrics, pretext task). Loading reads safetensors and
JSON only: nothing is unpickled.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path

import torch

MODEL_FORMAT = "sslstudio-classifier"
MODEL_VERSION = 1
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "model.json"
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def preprocessing_text(size: int) -> str:
    return (f"RGB, EXIF-transposed, shorter side resized to {size} (antialiased bilinear), "
            f"centre-cropped to {size}×{size}, float in [0,1], N×3×{size}×{size}; "
            f"normalisation is inside the model")


class ModelFileError(Exception):
    """A model file or folder that cannot be used; the message names it and says why."""


def _json_safe(value):
    return json.loads(json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist")
                                 else str(o)))


def _pretext_of(config: dict) -> str | None:
    for key in ("pretext", "task", "pretext_task"):
        value = config.get(key)
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and value.get("name"):
            return str(value["name"])
    return None


def describe_model(model, classes: list[str], image_size: int, *, method: str,
                   metrics: dict | None = None, backbone_config: dict | None = None,
                   info: dict | None = None) -> dict:
    """The model card (model.json) for a ClassifierModel."""
    backbone = model.backbone
    backbone_config = dict(backbone_config or {})
    head = {"kind": model.head_kind, "n_classes": len(classes),
            "flip_average": bool(getattr(model, "flip_average", False))}
    if model.head_kind == "knn":
        head.update(k=model.head.k, temperature=model.head.temperature,
                    bank_size=int(model.head.bank.shape[0]),
                    in_features=int(model.head.bank.shape[1]))
    else:
        head["in_features"] = int(model.head.in_features)
    small_stem = getattr(backbone, "small_stem", backbone_config.get("small_stem"))
    return _json_safe({
        "format": MODEL_FORMAT,
        "version": MODEL_VERSION,
        "classes": list(classes),
        "image_size": int(image_size),
        "input": f"float32 N×3×{image_size}×{image_size}, RGB in [0, 1]",
        "output": f"class probabilities N×{len(classes)} (softmax), in the order of 'classes'",
        "preprocessing": preprocessing_text(int(image_size)),
        "normalization": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD,
                          "note": "applied inside the model; do not normalise the input"},
        "backbone": {"name": getattr(backbone, "name", backbone_config.get("name")),
                     "image_size": int(backbone_config.get("image_size", image_size)),
                     "small_stem": small_stem,
                     "num_features": getattr(backbone, "num_features", None),
                     "config": backbone_config},
        "head": head,
        "method": method,
        "pretext_task": _pretext_of(backbone_config),
        "metrics": metrics or {},
        "info": info or {},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    })


def state_tensors(model) -> dict[str, torch.Tensor]:
    # clone: safetensors refuses tensors that share storage
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}


def save_model_dir(out_dir: str | os.PathLike, model, card: dict) -> Path:
    """Write model.safetensors + model.json (each atomically) into out_dir."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights, card_path = out / WEIGHTS_NAME, out / CARD_NAME
    tmp = weights.with_name(weights.name + ".tmp")
    save_file(state_tensors(model), str(tmp), metadata={"sslstudio": json.dumps(card)})
    os.replace(tmp, weights)
    tmp = card_path.with_name(card_path.name + ".tmp")
    tmp.write_text(json.dumps(card, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, card_path)
    return out


def save_result(out_dir, result, image_size: int) -> Path:
    """Save a ClassifierResult (from fit_classifier) as a model folder."""
    info = {k: v for k, v in result.info.items() if k != "backbone_config"}
    card = describe_model(result.model, result.classes, image_size, method=result.method,
                          metrics=result.metrics,
                          backbone_config=result.info.get("backbone_config"), info=info)
    return save_model_dir(out_dir, result.model, card)


def read_card(path: Path) -> dict:
    if not path.is_file():
        raise ModelFileError(f"{path}: model description not found")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelFileError(f"{path}: not a readable model description ({exc})") from exc
    if not isinstance(card, dict) or card.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{path}: not an SSL Studio classifier description")
    for key in ("classes", "image_size", "backbone", "head"):
        if key not in card:
            raise ModelFileError(f"{path}: model description lacks '{key}'")
    return card


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not path.is_file():
        raise ModelFileError(f"{path}: model weights not found")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises several types for damaged files
        raise ModelFileError(f"{path}: damaged or not a safetensors file ({exc})") from exc


def build_model(card: dict, tensors: dict[str, torch.Tensor], source: Path):
    """Rebuild a ClassifierModel from its card and weights (no pickle anywhere)."""
    from torch import nn

    from sslstudio.models.backbones import create_backbone
    from sslstudio.train.downstream.model import ClassifierModel, KNNHead

    spec, head_spec = card["backbone"], card["head"]
    kwargs = {"image_size": int(spec.get("image_size") or card["image_size"])}
    if spec.get("small_stem") is not None:
        kwargs["small_stem"] = bool(spec["small_stem"])
    try:
        backbone = create_backbone(spec["name"], **kwargs)
    except Exception as exc:
        raise ModelFileError(f"{source}: cannot build backbone {spec.get('name')!r} ({exc})") \
            from exc
    n_classes = len(card["classes"])
    if head_spec["kind"] == "knn":
        bank = tensors.get("head.bank")
        onehot = tensors.get("head.bank_onehot")
        if bank is None or onehot is None:
            raise ModelFileError(f"{source}: kNN reference features missing from the weights")
        head = KNNHead(bank, onehot.argmax(1), n_classes, k=int(head_spec["k"]),
                       temperature=float(head_spec.get("temperature", 0.1)))
    else:
        head = nn.Linear(int(head_spec["in_features"]), n_classes)
    model = ClassifierModel(backbone, head, head_spec["kind"],
                            flip_average=bool(head_spec.get("flip_average", False)))
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(f"{source}: weights do not match the described model "
                             f"({str(exc).splitlines()[0]})") from exc
    return model.eval()


def load_model_dir(model_dir: str | os.PathLike):
    """(ClassifierModel in eval mode, card dict); ModelFileError with the reason otherwise."""
    folder = Path(model_dir)
    if not folder.is_dir():
        raise ModelFileError(f"{folder}: model folder not found")
    card = read_card(folder / CARD_NAME)
    tensors = read_tensors(folder / WEIGHTS_NAME)
    return build_model(card, tensors, folder / WEIGHTS_NAME), card
