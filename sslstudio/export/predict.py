"""Predict a folder of images from an exported model file alone (no project needed).

Images go through `sslstudio.data.decode.load_square`, the very function that
fills the app's cache, so an exported model sees exactly the pixels the app saw.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sslstudio.export.model_dir import CARD_NAME, MODEL_FORMAT, ModelFileError

try:
    from sslstudio.data.formats import IMAGE_EXTENSIONS
except ImportError:  # pragma: no cover - until sslstudio.data.formats exists
    IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}

TORCHSCRIPT_SUFFIXES = {".pt", ".pth", ".ts", ".torchscript", ".jit"}


def _check_card(card, source: Path) -> dict:
    if not isinstance(card, dict) or card.get("format") != MODEL_FORMAT \
            or "classes" not in card or "image_size" not in card:
        raise ModelFileError(f"{source}: no SSL Studio model card inside (was it exported by "
                             f"`sslstudio export`?)")
    return card


def _parse_card(text: str, source: Path) -> dict:
    try:
        return _check_card(json.loads(text), source)
    except ValueError as exc:
        raise ModelFileError(f"{source}: model card is not valid JSON ({exc})") from exc


class Predictor:
    """Class probabilities for uint8 N×S×S×3 images, whatever the file format
    (`run`: those images → N×K probabilities, in the layout its runtime prefers)."""

    def __init__(self, path: Path, card: dict, run: Callable[[np.ndarray], np.ndarray],
                 kind: str) -> None:
        self.path, self.card, self._run, self.kind = path, card, run, kind
        self.classes: list[str] = list(card["classes"])
        self.image_size: int = int(card["image_size"])

    def predict(self, images_uint8: np.ndarray) -> np.ndarray:
        # torch.from_numpy wants a writable array (a read-only memmap is copied)
        return self._run(np.require(images_uint8, np.uint8, ("C_CONTIGUOUS", "WRITEABLE")))


def _torch_runner(module):
    import torch

    def run(images_uint8: np.ndarray) -> np.ndarray:
        # N×S×S×3 viewed as N×3×S×S: channels-last in memory, which the CPU convolutions
        # run 1.4× faster than a contiguous copy (benchmarks/bench_predict.py)
        x = torch.from_numpy(images_uint8).permute(0, 3, 1, 2).float().div_(255.0)
        with torch.no_grad():
            return module(x).double().numpy()
    return run


def _nchw_float(images_uint8: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(images_uint8.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0


def _load_torchscript(path: Path) -> Predictor:
    import warnings

    import torch

    extra = {"sslstudio.json": ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as exc:
        first = (str(exc).splitlines() or [""])[0].split(". ")[0]   # torch's first sentence
        raise ModelFileError(f"{path}: damaged or not a TorchScript file ({first})") from exc
    text = extra["sslstudio.json"]
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    card = _parse_card(text, path) if text else _card_beside(path)
    return Predictor(path, card, _torch_runner(module.eval()), "torchscript")


def _load_onnx(path: Path) -> Predictor:
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelFileError(f"{path}: damaged or not an ONNX file ({exc.__class__.__name__})") \
            from exc
    meta = session.get_modelmeta().custom_metadata_map
    card = _parse_card(meta["sslstudio"], path) if "sslstudio" in meta else _card_beside(path)
    name = session.get_inputs()[0].name
    return Predictor(path, card,
                     lambda images: session.run(None, {name: _nchw_float(images)})[0]
                     .astype(np.float64), "onnx")


def _load_safetensors(path: Path) -> Predictor:
    from safetensors import safe_open

    from sslstudio.export.model_dir import build_model, read_tensors

    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
    except Exception as exc:
        raise ModelFileError(f"{path}: damaged or not a safetensors file ({exc})") from exc
    card = _parse_card(meta["sslstudio"], path) if "sslstudio" in meta else _card_beside(path)
    model = build_model(card, read_tensors(path), path)
    return Predictor(path, card, _torch_runner(model), "safetensors")


def _card_beside(path: Path) -> dict:
    for candidate in (path.with_name(path.name + ".json"), path.with_suffix(".json")):
        if candidate.is_file():
            try:
                return _parse_card(candidate.read_text(encoding="utf-8"), candidate)
            except OSError as exc:
                raise ModelFileError(f"{candidate}: cannot read ({exc})") from exc
    raise ModelFileError(f"{path}: no model card inside and no {path.name}.json beside it")


def load_predictor(model_path: str | os.PathLike) -> Predictor:
    """Open an exported model (.pt TorchScript, .onnx, .safetensors) or a model folder."""
    path = Path(model_path)
    if path.is_dir():
        from sslstudio.export.model_dir import load_model_dir

        model, card = load_model_dir(path)
        return Predictor(path / CARD_NAME, card, _torch_runner(model), "model-folder")
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return _load_onnx(path)
    if suffix == ".safetensors":
        return _load_safetensors(path)
    if suffix in TORCHSCRIPT_SUFFIXES:
        return _load_torchscript(path)
    raise ModelFileError(f"{path}: unknown model file type '{suffix}' "
                         f"(expected .pt, .onnx or .safetensors)")


@dataclass
class FolderPredictions:
    classes: list[str]
    rows: list[tuple[str, str, float, list[float]]] = field(default_factory=list)
    bad: list[tuple[str, str]] = field(default_factory=list)   # (relpath, reason)

    def labels(self) -> dict[str, str]:
        return {name: label for name, label, _, _ in self.rows}


def list_images(folder: Path) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                found.append((Path(dirpath) / name).relative_to(folder).as_posix())
    return found


def predict_folder(model_path, folder, batch_size: int = 64,
                   progress: Callable[[int, int], None] | None = None,
                   cancel: Callable[[], bool] | None = None,
                   predictor: Predictor | None = None,
                   relpaths: list[str] | None = None) -> FolderPredictions:
    """Predict every image under `folder` (or the `relpaths` of it the caller has listed
    already); unreadable images are listed in .bad and skipped."""
    from sslstudio.data.decode import DecodeError, load_square

    predictor = predictor or load_predictor(model_path)
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    relpaths = list_images(folder) if relpaths is None else relpaths
    result = FolderPredictions(predictor.classes)
    pending: list[tuple[str, np.ndarray]] = []

    def flush():
        if not pending:
            return
        probs = predictor.predict(np.stack([img for _, img in pending]))
        for (name, _), p in zip(pending, probs):
            best = int(np.argmax(p))
            result.rows.append((name, predictor.classes[best], float(p[best]),
                                [float(v) for v in p]))
        pending.clear()

    for done, relpath in enumerate(relpaths, 1):
        if cancel is not None and cancel():
            break
        try:
            pending.append((relpath, load_square(folder / relpath, predictor.image_size)))
        except DecodeError as exc:
            result.bad.append((relpath, getattr(exc, "reason", str(exc))))
        except OSError as exc:
            result.bad.append((relpath, str(exc)))
        if len(pending) >= batch_size:
            flush()
        if progress is not None:
            progress(done, len(relpaths))
    flush()
    return result


def write_predictions_csv(predictions: FolderPredictions, out: str | os.PathLike | None,
                          stream=None) -> None:
    """`filename,label,confidence,p_<class>...` to a file (atomically) or to a stream."""
    header = ["filename", "label", "confidence", *(f"p_{c}" for c in predictions.classes)]

    def write(handle):
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for name, label, conf, probs in predictions.rows:
            writer.writerow([name, label, f"{conf:.6f}", *(f"{p:.6f}" for p in probs)])

    if out is None:
        write(stream)
        return
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as handle:
        write(handle)
    os.replace(tmp, out)
