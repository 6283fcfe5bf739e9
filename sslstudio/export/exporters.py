"""Export a classifier model folder to TorchScript, ONNX or safetensors, verified on the spot.

Every exported file takes float32 N×3×S×S images in [0, 1] and returns class
probabilities; every file carries its model card inside (TorchScript extra
file, ONNX metadata, safetensors header) and beside it as `<file>.json`, so
`sslstudio predict` needs nothing but the file.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from sslstudio.export.model_dir import ModelFileError, load_model_dir, state_tensors

FORMATS = {"torchscript": ".pt", "onnx": ".onnx", "safetensors": ".safetensors"}
CARD_KEY = "sslstudio"               # name of the embedded card in every format
TORCHSCRIPT_CARD = "sslstudio.json"  # TorchScript extra-file name
ONNX_TOLERANCE = 1e-4
TORCHSCRIPT_TOLERANCE = 1e-5


class ExportError(Exception):
    """An export that could not be written or did not verify; the message says why."""


def card_path_for(path: str | os.PathLike) -> Path:
    """model.onnx → model.onnx.json (one card per exported file, no clashes between formats)."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def _sample_batch(size: int, n: int = 3, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=generator)


def _export_torchscript(model, card: dict, out: Path, size: int) -> dict:
    example = _sample_batch(size, n=2)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, example, check_trace=False)
    tmp = out.with_name(out.name + ".tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated, still useful
        torch.jit.save(traced, str(tmp), _extra_files={TORCHSCRIPT_CARD: json.dumps(card)})
        os.replace(tmp, out)
        reloaded = torch.jit.load(str(out), map_location="cpu")
    batch = _sample_batch(size, n=3, seed=1)        # another batch size than the trace
    with torch.no_grad():
        diff = float((reloaded(batch) - model(batch)).abs().max())
    if not diff < TORCHSCRIPT_TOLERANCE:
        raise ExportError(f"TorchScript file {out} does not reproduce the model "
                          f"(max abs difference {diff:.2e})")
    return {"check": "reloaded with torch.jit.load, compared with PyTorch on 3 images",
            "max_abs_diff": diff, "passed": True}


def _onnx_export(model, example: torch.Tensor, path: Path) -> str:
    """The default (dynamo) exporter first; the TorchScript-based one if it fails."""
    names = dict(input_names=["images"], output_names=["probabilities"])
    try:
        batch = torch.export.Dim("batch", min=1, max=4096)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(model, (example,), dynamic_shapes=({0: batch},),
                                        dynamo=True, verbose=False, **names)
        program.save(str(path))
        return "dynamo"
    except Exception:  # older exporters or unsupported ops: fall back
        path.unlink(missing_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), dynamo=False, opset_version=17,
                          dynamic_axes={"images": {0: "batch"}, "probabilities": {0: "batch"}},
                          **names)
    return "torchscript-based"


def _export_onnx(model, card: dict, out: Path, size: int) -> dict:
    import onnx
    import onnxruntime as ort

    tmp = out.with_name(out.name + ".tmp")
    exporter = _onnx_export(model, _sample_batch(size, n=2), tmp)
    proto = onnx.load(str(tmp))
    entry = proto.metadata_props.add()
    entry.key, entry.value = CARD_KEY, json.dumps(card)
    onnx.save(proto, str(tmp))
    os.replace(tmp, out)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    batch = _sample_batch(size, n=3, seed=1)
    got = session.run(None, {session.get_inputs()[0].name: batch.numpy()})[0]
    with torch.no_grad():
        want = model(batch).numpy()
    diff = float(np.abs(got - want).max())
    if not diff < ONNX_TOLERANCE:
        raise ExportError(f"ONNX file {out} differs from PyTorch by {diff:.2e} "
                          f"(limit {ONNX_TOLERANCE:.0e})")
    return {"check": f"onnxruntime vs PyTorch on 3 images ({exporter} exporter)",
            "max_abs_diff": diff, "passed": True}


def _export_safetensors(model, card: dict, out: Path, size: int) -> dict:
    from safetensors.torch import save_file

    from sslstudio.export.model_dir import build_model, read_tensors

    tmp = out.with_name(out.name + ".tmp")
    save_file(state_tensors(model), str(tmp), metadata={CARD_KEY: json.dumps(card)})
    os.replace(tmp, out)
    rebuilt = build_model(card, read_tensors(out), out)
    batch = _sample_batch(size, n=3, seed=1)
    with torch.no_grad():
        diff = float((rebuilt(batch) - model(batch)).abs().max())
    if diff != 0.0:
        raise ExportError(f"safetensors file {out} does not reproduce the model ({diff:.2e})")
    return {"check": "rebuilt from safetensors + JSON, compared with PyTorch on 3 images",
            "max_abs_diff": diff, "passed": True}


EXPORTERS = {"torchscript": _export_torchscript, "onnx": _export_onnx,
             "safetensors": _export_safetensors}


def export_model(model_dir: str | os.PathLike, fmt: str, out: str | os.PathLike) -> dict:
    """Write `out` in format fmt plus its model card `<out>.json`; returns the card.

    `out` may be a folder (the file is then named model.<ext> inside it).
    Raises ExportError (unknown format, failed verification, unwritable place)
    or ModelFileError (missing or damaged model folder).
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    model, card = load_model_dir(model_dir)
    out = Path(out)
    if out.is_dir():
        out = out / f"model{FORMATS[fmt]}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create {out.parent}: {exc}") from exc
    size = int(card["image_size"])
    card = dict(card)
    card["export"] = {"format": fmt, "file": out.name,
                      "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    try:
        verification = EXPORTERS[fmt](model, card, out, size)
    except (ExportError, ModelFileError):
        raise
    except OSError as exc:
        raise ExportError(f"cannot write {out}: {exc}") from exc
    except Exception as exc:  # exporter internals: report, never a bare traceback
        raise ExportError(f"{fmt} export of {model_dir} failed: {type(exc).__name__}: {exc}") \
            from exc
    card["export"]["verification"] = verification
    card_path = card_path_for(out)
    card_path.write_text(json.dumps(card, indent=2, ensure_ascii=False), encoding="utf-8")
    card["export"]["path"] = str(out)
    card["export"]["card_path"] = str(card_path)
    return card
