"""Checkpoints that survive a crash mid-write and load without unpickling code.

``save_checkpoint`` writes a temp file, fsyncs it, moves the current file to
``.prev`` and renames the temp file into place, so at every instant either the
new file, the old file or ``.prev`` is complete. Everything stored is a tensor
or a primitive container, so ``torch.load(weights_only=True)`` reads it.
"""

from __future__ import annotations

import os
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT_NAME = "last.pt"


class CheckpointError(Exception):
    """No usable checkpoint could be read."""


def checkpoint_path(run_dir: str | Path) -> Path:
    """Where a pretraining run folder keeps its checkpoint."""
    return Path(run_dir) / "checkpoints" / CHECKPOINT_NAME


def prev_path(path: Path) -> Path:
    return path.with_name(path.name + ".prev")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open folders; the rename is still atomic there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Atomically replace ``path`` with ``state``, keeping the previous file as ``.prev``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            os.replace(path, prev_path(path))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _load_one(path: Path) -> dict[str, Any]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or "model" not in state or "step" not in state:
        raise CheckpointError(f"{path.name} is not an SSL Studio checkpoint")
    return state


def load_checkpoint(path: str | Path) -> tuple[dict[str, Any], Path, str | None]:
    """(state, file actually read, warning or None); falls back to ``.prev`` when needed."""
    path = Path(path)
    problems = []
    for candidate in (path, prev_path(path)):
        if not candidate.exists():
            problems.append(f"{candidate.name}: missing")
            continue
        try:
            state = _load_one(candidate)
        except Exception as exc:  # noqa: BLE001 - truncated/corrupt files raise many types
            problems.append(f"{candidate.name}: {exc.__class__.__name__}: {exc}")
            continue
        warning = None
        if candidate != path:
            warning = (f"{path.name} could not be read ({problems[0].split(': ', 1)[1]}); "
                       f"resuming from the previous checkpoint {candidate.name}")
            warnings.warn(warning, stacklevel=2)
        return state, candidate, warning
    raise CheckpointError(f"no usable checkpoint in {path.parent}: " + "; ".join(problems))


def has_checkpoint(path: str | Path) -> bool:
    path = Path(path)
    return path.exists() or prev_path(path).exists()


# ----------------------------------------------------------------------------- RNG state
def capture_rng_state() -> dict[str, Any]:
    """Every global RNG as tensors and lists (weights_only-safe)."""
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": str(np_name), "keys": torch.from_numpy(np_keys.astype(np.int64)),
                  "pos": int(np_pos), "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "python": {"version": int(py_version), "internal": list(py_internal),
                   "gauss": py_gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state((np_state["name"], np_state["keys"].numpy().astype(np.uint32),
                         np_state["pos"], np_state["has_gauss"], np_state["gauss"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
