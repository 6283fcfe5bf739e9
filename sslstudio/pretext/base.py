"""The one interface every pretext task implements, and the module that trains it.

A task is a small, stateless-looking object: it turns a batch of images into
inputs and targets, builds the head that sits on the backbone, scores the
outputs and draws previews. The engine, the CLI and the GUI only talk to this
interface, so adding a task means adding one module and one registry line.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn


def classification_loss(outputs: torch.Tensor, targets: torch.Tensor):
    """Cross-entropy and accuracy for tasks whose answer is a class (a rotation, a permutation).

    The accuracy stays a 0-dim tensor so the engine reads it at log points, not every step.
    """
    logits = outputs.float()
    loss = nn.functional.cross_entropy(logits, targets)
    accuracy = (logits.argmax(1) == targets).float().mean()
    return loss, {"accuracy": accuracy}


@dataclass
class PreviewImage:
    """One picture for a person: an H×W×3 uint8 grid with its captions drawn in."""

    title: str
    image: np.ndarray


@dataclass(frozen=True)
class TaskOption:
    """A keyword option of a task, described so the CLI and GUI can list and check it."""

    name: str
    default: Any
    help: str
    choices: tuple | None = None
    minimum: float | None = None
    maximum: float | None = None
    label: str | None = None    # what the GUI calls it, where the name reads poorly

    def coerce(self, value: Any) -> Any:
        """Convert `value` (possibly a string from the command line) to the default's type."""
        kind = type(self.default)
        try:
            if kind is bool and isinstance(value, str):
                lowered = value.strip().lower()
                if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError(value)
                value = lowered in ("1", "true", "yes", "on")
            elif kind is int and not isinstance(value, bool):
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError(value)
                value = int(value)
            elif kind is float and not isinstance(value, bool):
                value = float(value)
            elif kind is str:
                value = str(value)
        except (TypeError, ValueError):
            raise TypeError(f"option {self.name!r} expects a {kind.__name__}, got {value!r}") from None
        if self.choices is not None and value not in self.choices:
            raise TypeError(f"option {self.name!r} must be one of "
                            f"{', '.join(map(str, self.choices))}; got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise TypeError(f"option {self.name!r} must be at least {self.minimum}; got {value!r}")
        if self.maximum is not None and value > self.maximum:
            raise TypeError(f"option {self.name!r} must be at most {self.maximum}; got {value!r}")
        return value


class PretextTask(ABC):
    """A self-supervised task: batch → (inputs, targets) → head(backbone) → loss, previews."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""  # one sentence a user understands
    metric_names: ClassVar[tuple[str, ...]] = ()
    requires_color: ClassVar[bool] = False
    min_batch: ClassVar[int] = 1        # images a batch needs for the loss to mean anything
    OPTIONS: ClassVar[tuple[TaskOption, ...]] = ()

    def __init__(self, **options: Any) -> None:
        known = {opt.name: opt for opt in self.OPTIONS}
        unknown = sorted(set(options) - set(known))
        if unknown:
            listing = ", ".join(known) or "none"
            raise TypeError(f"task {self.name!r} has no option {', '.join(map(repr, unknown))} "
                            f"(options: {listing})")
        for opt in self.OPTIONS:
            value = opt.coerce(options[opt.name]) if opt.name in options else opt.default
            setattr(self, opt.name, value)

    @classmethod
    def options(cls) -> tuple[TaskOption, ...]:
        """The keyword options this task accepts, with defaults and help."""
        return tuple(cls.OPTIONS)

    def config(self) -> dict:
        """The option values in use (JSON-able), e.g. for a run's config.json."""
        return {opt.name: getattr(self, opt.name) for opt in self.OPTIONS}

    def check_images(self, images: np.ndarray) -> str | None:
        """A message explaining why these sample images (N×H×W×3 uint8) do not suit the task."""
        return None

    @abstractmethod
    def build_head(self, backbone: nn.Module) -> nn.Module:
        """The task-specific module on top of the backbone (classifier, decoder, projector)."""

    @abstractmethod
    def make_batch(self, images: torch.Tensor) -> tuple[Any, Any]:
        """(inputs, targets) from N×3×S×S float images in [0, 1], on the images' device."""

    def forward(self, backbone: nn.Module, head: nn.Module, inputs: Any) -> Any:
        return head(backbone.forward_features(inputs))

    @abstractmethod
    def loss(self, outputs: Any, targets: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """Scalar loss and the metrics named in `metric_names`.

        A metric is a float or a detached 0-dim tensor; the engine sums tensors on the
        device and reads them only at log points (a float() here would make every CUDA
        step wait for the GPU). Events always carry plain floats.
        """

    @abstractmethod
    def preview(self, inputs: Any, outputs: Any, targets: Any,
                max_items: int = 8) -> list[PreviewImage]:
        """Pictures of what the model does on this batch."""


class PretextModel(nn.Module):
    """Backbone + task head as one module, so the engine optimises and saves them together."""

    def __init__(self, task: PretextTask, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        object.__setattr__(self, "task", task)  # a plain object, not a sub-module

    def forward(self, inputs: Any) -> Any:
        return self.task.forward(self.backbone, self.head, inputs)
