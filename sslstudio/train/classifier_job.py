"""One classifier fit as the app asks for it: fit, validate, predict the rest, save the model.

The app runs it in ``sslstudio classifier-worker``, a child process like pretraining's, so
the fit trains on every core while the window stays responsive (gui/classifier_process.py
has the measurements). Everything that crosses the process boundary is JSON: the job in,
the outcome out.

A job folder holds ``job.json`` (written by the app), ``control`` ("stop" cancels),
``progress.json`` (done and total, rewritten as the fit goes) and ``outcome.json``
(written once, last: status "done", "cancelled" or "failed").
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

JOB_FILE = "job.json"
CONTROL_FILE = "control"
PROGRESS_FILE = "progress.json"
OUTCOME_FILE = "outcome.json"


@dataclass
class ClassifierJob:
    project_dir: str
    run_dir: str | None          # the pretraining run; None only for "scratch"
    method: str
    model_dir: str               # where the model folder goes; not created unless the fit ends
    labels: dict[str, str] = field(default_factory=dict)
    efficiency: bool = False     # also measure accuracy against labels per class
    mirror: bool | None = None   # average each image with its mirror image; None: unless
                                 # the images have a handedness (text, digits)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> ClassifierJob:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a classifier job is a JSON object")
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown classifier job fields: {', '.join(sorted(unknown))}")
        return cls(**data)


def run_classifier_job(job: ClassifierJob, progress=None, cancel=None) -> dict:
    """Fit, validate, predict the unlabelled images and save the model folder.

    Returns the outcome as plain JSON types. Raises Cancelled when ``cancel()`` turned
    true; the model folder is then left unwritten (or removed again)."""
    from sslstudio.export.model_dir import save_result
    from sslstudio.project.images import load_project_images
    from sslstudio.project.store import ProjectStore
    from sslstudio.train.classifier import (ClassifierOptions, fit_classifier, label_efficiency,
                                            load_pretrained)

    if job.run_dir is not None:
        backbone, config = load_pretrained(job.run_dir)
    else:  # scratch without a pretraining run: the small default network
        from sslstudio.models.backbones import create_backbone
        backbone, config = create_backbone("small_cnn", image_size=64), {"image_size": 64}
    size = int(config.get("image_size") or 64)
    store = ProjectStore.open(job.project_dir)
    try:
        relpaths, images = load_project_images(store, size)
        feature_cache = Path(store.cache_dir) / "features"
    finally:
        store.close()
    present = set(relpaths)
    labels = {r: c for r, c in job.labels.items() if r in present}
    options = ClassifierOptions(feature_cache_dir=str(feature_cache),
                                epochs=15 if job.method != "linear" else 30,
                                augment_average=job.mirror)
    result = fit_classifier(backbone, images, labels, job.method, options, ids=relpaths,
                            progress=progress, cancel=cancel)
    model_dir = Path(job.model_dir)
    save_result(model_dir, result, size)
    outcome = {
        "status": "done", "method": job.method, "run_dir": job.run_dir,
        "model_dir": str(model_dir),
        "report": {**result.metrics, "classes": result.classes},
        "truth": dict(result.validation_truth),
        "validated": dict(result.validation_predictions),
        "predictions": {p.id: (p.label, p.confidence) for p in result.predictions},
        "notes": list(result.metrics.get("notes") or []),
        "history": result.info.get("validation_curve"),
    }
    if job.efficiency and job.run_dir is not None:
        try:
            outcome["efficiency"] = label_efficiency(backbone, images, labels, ids=relpaths,
                                                     cancel=cancel)
        except BaseException:
            # a cancelled job leaves nothing behind, whatever stage it was in
            shutil.rmtree(model_dir, ignore_errors=True)
            raise
    return jsonable(outcome)


def jsonable(value: Any) -> Any:
    """``value`` in JSON types: numpy numbers and arrays as numbers and lists, paths and
    other objects as text, NaN and infinities as null (events.json_safe)."""
    from sslstudio.train.events import json_safe

    return json_safe(json.loads(json.dumps(
        value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))))


def failed_outcome(exc: BaseException, details: str) -> dict:
    """The outcome of a fit that raised: the message in words, the traceback as details."""
    from sslstudio.train.events import error_message

    return {"status": "failed", "message": error_message(exc), "details": details}


def write_json_atomically(path: Path, data: Any) -> None:
    """Readers see the old file or the new one, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> Any | None:
    """The file's JSON, or None when it is missing or (being replaced) unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
