"""Backbone files: `STEM.safetensors` (weights) + `STEM.json` (how to rebuild it).

Both are written atomically (temp file + os.replace), so a crash leaves either the
old pair or the new one, and loading never unpickles anything.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from sslstudio.models.backbones import Backbone, WeightsError, create_backbone


def _stem(path_without_suffix: str | os.PathLike) -> Path:
    path = Path(path_without_suffix)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path


def _atomic_write(target: Path, write) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def save_backbone(path_without_suffix, backbone: Backbone, config: dict | None = None) -> dict:
    """Write the weights and a JSON config; returns the config written.

    The architecture fields (name, image_size, small_stem, num_features, stride) are
    taken from the backbone itself; anything else in `config` is kept as extra info.
    """
    from safetensors.torch import save_file

    stem = _stem(path_without_suffix)
    info = dict(config or {})
    info.update(backbone.config())
    tensors = {k: v.detach().to("cpu").contiguous().clone()
               for k, v in backbone.state_dict().items()}
    _atomic_write(stem.with_suffix(".safetensors"), lambda tmp: save_file(tensors, tmp))

    def write_json(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(info, handle, indent=2, sort_keys=True, default=str)

    _atomic_write(stem.with_suffix(".json"), write_json)
    return info


def load_backbone(path_without_suffix) -> tuple[Backbone, dict]:
    """Rebuild a backbone saved by `save_backbone`; WeightsError names the file on failure."""
    from safetensors.torch import load_file

    stem = _stem(path_without_suffix)
    json_path, weights_path = stem.with_suffix(".json"), stem.with_suffix(".safetensors")
    for path in (json_path, weights_path):
        if not path.is_file():
            raise WeightsError(f"backbone file not found: {path}")
    try:
        config = json.loads(json_path.read_text(encoding="utf-8"))
        name, image_size = config["name"], int(config["image_size"])
    except (ValueError, KeyError, TypeError) as exc:
        raise WeightsError(f"{json_path}: not a backbone description ({exc})") from exc
    try:
        backbone = create_backbone(name, image_size=image_size, small_stem=config.get("small_stem"))
    except ValueError as exc:
        raise WeightsError(f"{json_path}: {exc}") from exc
    try:
        tensors = load_file(str(weights_path))
    except Exception as exc:  # safetensors raises several types for damaged files
        raise WeightsError(f"{weights_path}: damaged or not a safetensors file ({exc})") from exc
    try:
        backbone.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{weights_path}: weights do not fit {name} ({exc})") from exc
    backbone.eval()
    return backbone, config


__all__ = ["save_backbone", "load_backbone"]
