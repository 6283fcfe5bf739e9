"""Pretext tasks: one module each, one interface (`base.PretextTask`), one registry."""
from __future__ import annotations

from sslstudio.pretext.base import PretextModel, PretextTask, PreviewImage, TaskOption
from sslstudio.pretext.colorization import ColorizationTask
from sslstudio.pretext.contrastive import ContrastiveTask
from sslstudio.pretext.contrastive_rotation import ContrastiveRotationTask
from sslstudio.pretext.inpainting import InpaintingTask
from sslstudio.pretext.jigsaw import JigsawTask
from sslstudio.pretext.rotation import RotationTask

TASKS: dict[str, type[PretextTask]] = {
    RotationTask.name: RotationTask,
    JigsawTask.name: JigsawTask,
    InpaintingTask.name: InpaintingTask,
    ColorizationTask.name: ColorizationTask,
    ContrastiveTask.name: ContrastiveTask,
    ContrastiveRotationTask.name: ContrastiveRotationTask,
}


def create_task(name: str, **options) -> PretextTask:
    """A task by registry name; unknown names raise ValueError, bad options TypeError."""
    try:
        cls = TASKS[name]
    except KeyError:
        raise ValueError(f"unknown pretext task {name!r}; choose one of {', '.join(TASKS)}") from None
    return cls(**options)


__all__ = ["TASKS", "create_task", "PretextTask", "PretextModel", "PreviewImage", "TaskOption"]
