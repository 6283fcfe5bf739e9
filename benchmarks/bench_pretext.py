"""Cost of each pretext task and backbone: make_batch alone and a full training step.

    .venv/bin/python benchmarks/bench_pretext.py [--device cpu|cuda] [--image-size 64]
        [--batch-size 64] [--steps 10] [--backbones small_cnn,resnet18] [--tasks rotation,...]

Images/s counts source images (rotation trains on 4 rotations of each, jigsaw on 9
tiles, contrastive on 2 views). The step runs as the engine runs it: bf16 autocast
where the device computes bf16 natively (Ampere-class GPUs, CPUs with AVX512-BF16 or
AMX; `--precision float32` turns it off), the loss in float32, channels_last on CUDA.
Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sslstudio.models import create_backbone  # noqa: E402
from sslstudio.pretext import TASKS, create_task  # noqa: E402
from sslstudio.pretext.base import PretextModel  # noqa: E402
from sslstudio.train.device import mixed_precision  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(task_name, backbone_name, args, device):
    torch.manual_seed(0)
    task = create_task(task_name)
    backbone = create_backbone(backbone_name, image_size=args.image_size)
    model = PretextModel(task, backbone, task.build_head(backbone)).to(device)
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    images = torch.rand(args.batch_size, 3, args.image_size, args.image_size, device=device)
    amp = mixed_precision(device, args.precision)
    autocast = (lambda: torch.autocast(device.type, dtype=amp)) if amp else nullcontext

    def step():
        inputs, targets = task.make_batch(images)
        with autocast():
            outputs = model(inputs)
        loss, metrics = task.loss(outputs, targets)   # float32, as in the engine
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    for _ in range(3):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    sync(device)
    step_s = (time.perf_counter() - start) / args.steps
    start = time.perf_counter()
    for _ in range(args.steps):
        task.make_batch(images)
    sync(device)
    batch_s = (time.perf_counter() - start) / args.steps
    memory = torch.cuda.max_memory_allocated() / 2**20 if cuda else float("nan")
    return args.batch_size / step_s, args.batch_size / batch_s, memory, loss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--backbones", default="small_cnn,resnet18")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    parser.add_argument("--precision", choices=("auto", "float32"), default="auto")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    amp = mixed_precision(device, args.precision)
    print(f"device: {name}; {str(amp).replace('torch.', '') if amp else 'float32'}; "
          f"image {args.image_size}px, batch {args.batch_size}, {args.steps} steps\n")
    print("| task | backbone | train images/s | make_batch images/s | peak GPU MiB | final loss |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for backbone_name in args.backbones.split(","):
        for task_name in args.tasks.split(","):
            step_rate, batch_rate, memory, loss = measure(task_name, backbone_name, args, device)
            print(f"| {task_name} | {backbone_name} | {step_rate:,.0f} | {batch_rate:,.0f} | "
                  f"{memory:,.0f} | {loss:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
