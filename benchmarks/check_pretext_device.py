"""Smoke check on an accelerator: every task trains a few steps under autocast with
channels_last and draws its previews from device tensors.

    python benchmarks/check_pretext_device.py [--device cuda] [--image-size 64]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sslstudio.models import BACKBONES, create_backbone  # noqa: E402
from sslstudio.pretext import TASKS, create_task  # noqa: E402
from sslstudio.pretext.base import PretextModel  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--image-size", type=int, default=64)
    args = parser.parse_args()
    device = torch.device(args.device)
    failures = 0
    for backbone_name in BACKBONES:
        for name in TASKS:
            torch.manual_seed(0)
            task = create_task(name)
            backbone = create_backbone(backbone_name, image_size=args.image_size)
            model = PretextModel(task, backbone, task.build_head(backbone)).to(device)
            model = model.to(memory_format=torch.channels_last)
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
            images = torch.rand(16, 3, args.image_size, args.image_size, device=device)
            try:
                for _ in range(3):
                    inputs, targets = task.make_batch(images)
                    with torch.autocast(device.type, dtype=torch.bfloat16):
                        outputs = model(inputs)
                        loss, metrics = task.loss(outputs, targets)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                detach = lambda v: v.detach().float() if torch.is_tensor(v) and v.is_floating_point() else v  # noqa: E731
                targets_f = tuple(map(detach, targets)) if isinstance(targets, tuple) else detach(targets)
                pictures = task.preview(detach(inputs), detach(outputs), targets_f)
                shapes = [p.image.shape for p in pictures]
                print(f"ok   {backbone_name:9s} {name:12s} loss {float(loss.detach()):.3f} {metrics} {shapes}")
            except Exception as exc:  # report every combination, then fail
                failures += 1
                print(f"FAIL {backbone_name:9s} {name:12s} {type(exc).__name__}: {exc}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
