"""Learning-rate schedule (linear warmup then cosine to zero) and the optimizer factory."""

from __future__ import annotations

import math

import torch


def lr_at(step: int, total_steps: int, base_lr: float, warmup_fraction: float,
          final_fraction: float = 0.0) -> float:
    """The learning rate for optimizer step ``step`` (0-based) of ``total_steps``.

    A pure function of the step, so a resumed run needs nothing but the step and
    the planned total to continue exactly.
    """
    total_steps = max(1, int(total_steps))
    warmup = int(round(warmup_fraction * total_steps))
    if warmup > 0 and step < warmup:
        return base_lr * (step + 1) / warmup
    span = max(1, total_steps - warmup)
    progress = min(1.0, (step - warmup) / span)
    floor = base_lr * final_fraction
    return floor + (base_lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


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
