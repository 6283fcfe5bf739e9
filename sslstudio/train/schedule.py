"""Learning-rate schedule (linear warmup then cosine to zero) and the optimizer factory."""

from __future__ import annotations

import math

import torch


def lr_at(step: int, total_steps: int, base_lr: float, warmup_fraction: float,
          final_fraction: float = 0.0, anchor: tuple[int, float] | None = None) -> float:
    """The learning rate for optimizer step ``step`` (0-based) of ``total_steps``.

    A pure function of the step, so a resumed run needs nothing but the step, the
    planned total and the anchor to continue exactly. ``anchor`` = (step, progress)
    is where a re-planned total took over (see ``schedule_anchor``): from there the
    cosine carries on from that progress to the new end, without a jump.
    """
    floor = base_lr * final_fraction
    progress = schedule_progress(step, total_steps, warmup_fraction, anchor)
    if progress is None:  # warming up
        return base_lr * (step + 1) / _warmup_steps(total_steps, warmup_fraction)
    return floor + (base_lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def schedule_progress(step: int, total_steps: int, warmup_fraction: float,
                      anchor: tuple[int, float] | None = None) -> float | None:
    """How far along the cosine ``step`` is (0 to 1), or None while warming up."""
    total_steps = max(1, int(total_steps))
    if anchor is not None and step >= anchor[0]:
        start, start_progress = int(anchor[0]), float(anchor[1])
        return min(1.0, start_progress + (1.0 - start_progress) * (step - start)
                   / max(1, total_steps - start))
    warmup = _warmup_steps(total_steps, warmup_fraction)
    if warmup > 0 and step < warmup:
        return None
    return min(1.0, (step - warmup) / max(1, total_steps - warmup))


def _warmup_steps(total_steps: int, warmup_fraction: float) -> int:
    return int(round(warmup_fraction * max(1, int(total_steps))))


def schedule_anchor(step: int, old_total: int, warmup_fraction: float,
                    anchor: tuple[int, float] | None = None) -> tuple[int, float] | None:
    """The anchor for re-planning the total at ``step``: the progress reached so far under
    the old plan (None while warming up: the warmup simply follows the new total)."""
    progress = schedule_progress(step, old_total, warmup_fraction, anchor)
    return None if progress is None else (int(step), float(progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def make_optimizer(name: str, model: torch.nn.Module, lr: float,
                   weight_decay: float) -> torch.optim.Optimizer:
    """AdamW or SGD (Nesterov momentum); no weight decay on biases and norm layers."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    name = name.lower()
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)
    raise ValueError(f"unknown optimizer {name!r}; choose adamw or sgd")
