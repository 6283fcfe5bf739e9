"""Share of a contrastive training step spent on augmentation: per-image torchvision vs batched.

    .venv/bin/python benchmarks/bench_augment.py [--device cpu|cuda] [--sizes 32,64]
        [--batch-size 64] [--steps 10] [--backbone small_cnn]

"per image" is the usual recipe: torchvision.transforms.v2 applied to each image in Python
(what a DataLoader worker would do), twice per image for the two views. "batched" is the
engine's SimCLRAugment (sslstudio/pretext/augment.py): the same crop, flip, colour jitter,
grayscale and blur with per-image parameters, as a few tensor ops on the whole batch.
"train" is forward + backward + AdamW on the 2N views. share = augment / (augment + train),
measured side by side in one run. Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sslstudio.models import create_backbone  # noqa: E402
from sslstudio.pretext import create_task  # noqa: E402
from sslstudio.pretext.base import PretextModel  # noqa: E402


def per_image_recipe(size: int):
    """torchvision's version of the engine's default view recipe (jitter strength 0.5)."""
    from torchvision.transforms import v2

    s = 0.5
    kernel = max(3, int(0.1 * size) // 2 * 2 + 1)
    return v2.Compose([
        v2.RandomResizedCrop(size, scale=(0.2, 1.0), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.RandomApply([v2.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)], p=0.8),
        v2.RandomGrayscale(p=0.2),
        v2.RandomApply([v2.GaussianBlur(kernel, sigma=(0.1, max(0.2, 2.0 * size / 224)))],
                       p=0.5),
    ])


def timed(fn, steps: int, device: torch.device) -> float:
    """Median seconds per call after two warm-up calls."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def measure(size: int, args, device: torch.device) -> dict:
    torch.manual_seed(0)
    task = create_task("contrastive")
    backbone = create_backbone(args.backbone, image_size=size)
    model = PretextModel(task, backbone, task.build_head(backbone)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    images = torch.rand(args.batch_size, 3, size, size, device=device)
    recipe = per_image_recipe(size)
    views, targets = task.make_batch(images)

    def per_image():
        # the images start on the CPU as a loader would hold them, and go to the device after
        cpu = images.cpu()
        out = torch.stack([recipe(img) for img in cpu] + [recipe(img) for img in cpu])
        return out.to(device)

    def batched():
        return task.make_batch(images)

    def train():
        loss, _ = task.loss(model(views), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    row = {"size": size, "per_image": timed(per_image, args.steps, device),
           "batched": timed(batched, args.steps, device),
           "train": timed(train, args.steps, device)}
    row["share_per_image"] = row["per_image"] / (row["per_image"] + row["train"])
    row["share_batched"] = row["batched"] / (row["batched"] + row["train"])
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", default="32,64")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--backbone", default="small_cnn")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    print(f"contrastive, {args.backbone}, batch {args.batch_size} (2×{args.batch_size} views), "
          f"{device}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
          "median ms per step")
    print()
    print("| image px | augment per image (torchvision) | augment batched (engine) | speed-up "
          "| train step | augment share, per image | augment share, batched |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for size in (int(s) for s in args.sizes.split(",")):
        r = measure(size, args, device)
        print(f"| {size} | {r['per_image'] * 1e3:.1f} | {r['batched'] * 1e3:.1f} | "
              f"{r['per_image'] / r['batched']:.1f}× | {r['train'] * 1e3:.1f} | "
              f"{r['share_per_image']:.0%} | {r['share_batched']:.0%} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
