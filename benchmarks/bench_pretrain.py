"""Engine throughput against a bare PyTorch loop, per pretext task, side by side.

    .venv/bin/python benchmarks/bench_pretrain.py [--steps 20] [--batch-size 64]
        [--image-size 64] [--backbone small_cnn] [--device cpu] [--tasks rotation,jigsaw]

Both sides train the same model (backbone + task head, same seed), with the
same optimizer (AdamW), gradient clipping, batch size and device:

* bare:   one batch of images already decoded, already a float tensor on the
          device; each step runs task.make_batch → forward → loss → backward →
          clip → step. Nothing else.
* engine: run_pretraining() on a folder of the same size: batches gathered from
          the uint8 memmap cache by the prefetch thread, per-step reseeding,
          lr schedule, loss/NaN checks, step events to metrics.jsonl. Previews and
          quality probes are switched off (they are separate features, priced
          on their own); start-up (scan, cache decode, model build) and the final
          checkpoint are outside the timed window: images/s is measured between
          the step events after the warm-up steps and the last step.

make_batch is included on both sides. Each measurement runs in its own
process (so peak resident memory is per task and per side), twice,
alternating, and the better of the two is kept (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

WARMUP_STEPS = 5


def write_folder(root: Path, count: int, size: int) -> None:
    """Coloured shapes on noise, enough images for the timed steps without repeats."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        img = Image.fromarray(rng.integers(60, 200, (size, size, 3), dtype=np.uint8))
        draw = ImageDraw.Draw(img)
        x, y = rng.integers(0, size // 2, 2)
        r = int(rng.integers(size // 6, size // 3))
        color = tuple(int(c) for c in rng.integers(0, 255, 3))
        (draw.ellipse if i % 2 else draw.rectangle)([x, y, x + 2 * r, y + 2 * r], fill=color)
        img.save(root / f"img_{i:05d}.png")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_model(task_name: str, args, device):
    import torch

    from sslstudio.models.backbones import create_backbone
    from sslstudio.pretext import create_task
    from sslstudio.pretext.base import PretextModel
    from sslstudio.train.schedule import make_optimizer

    torch.manual_seed(0)
    task = create_task(task_name)
    backbone = create_backbone(args.backbone, image_size=args.image_size)
    model = PretextModel(task, backbone, task.build_head(backbone)).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return task, model, make_optimizer("adamw", model, 1e-3, 0.05)


def measure_bare(task_name: str, args) -> dict:
    import numpy as np
    import torch

    from sslstudio.train.device import pick_device

    device = pick_device(args.device)
    task, model, optimizer = build_model(task_name, args, device)
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 255, (args.batch_size, args.image_size,
                                                    args.image_size, 3), dtype=np.uint8))
    x = images.to(device).permute(0, 3, 1, 2).float().div(255).contiguous(
        memory_format=torch.channels_last if device.type == "cuda" else torch.contiguous_format)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else None

    def step():
        inputs, targets = task.make_batch(x)
        if amp is not None:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss, _ = task.loss(model(inputs), targets)
        else:
            loss, _ = task.loss(model(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return loss

    for _ in range(WARMUP_STEPS):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    float(loss.detach())  # wait for the device
    seconds = time.perf_counter() - start
    out = {"images_per_s": args.batch_size * args.steps / seconds, "peak_rss_mb": peak_rss_mb()}
    if device.type == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def measure_engine(task_name: str, args, folder: Path, work: Path) -> dict:
    import torch

    from sslstudio.train.pretrain import PretrainConfig, run_pretraining

    events: list[dict] = []
    config = PretrainConfig(folder=str(folder), out=tempfile.mkdtemp(prefix=f"run-{task_name}-", dir=work),
                            task=task_name, backbone=args.backbone, image_size=args.image_size,
                            batch_size=args.batch_size, steps=WARMUP_STEPS + args.steps,
                            device=args.device, preview_every=0, quality_every=0,
                            checkpoint_every=0, checkpoint_every_s=0, log_every=1,
                            cache_dir=str(work / "cache"))
    if torch.cuda.is_available() and args.device in ("cuda", "auto"):
        config.log_every = 5  # a per-step event would force a device sync every step
    run_pretraining(config, listeners=[events.append])
    steps = [e for e in events if e["kind"] == "step"]
    first = next(e for e in steps if e["step"] >= WARMUP_STEPS)
    last = steps[-1]
    seconds = last["time"] - first["time"]
    out = {"images_per_s": args.batch_size * (last["step"] - first["step"]) / seconds,
           "peak_rss_mb": peak_rss_mb()}
    if torch.cuda.is_available() and args.device in ("cuda", "auto"):
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def child(args) -> None:
    work = Path(args.work)
    if args.side == "bare":
        result = measure_bare(args.one, args)
    else:
        result = measure_engine(args.one, args, work / "images", work)
    print("RESULT " + json.dumps(result))


def run_child(task: str, side: str, args, work: Path) -> dict:
    command = [sys.executable, __file__, "--one", task, "--side", side, "--work", str(work),
               "--steps", str(args.steps), "--batch-size", str(args.batch_size),
               "--image-size", str(args.image_size), "--backbone", args.backbone,
               "--device", args.device]
    proc = subprocess.run(command, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{task}/{side} failed:\n{proc.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--backbone", default="small_cnn")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tasks", default="")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        child(args)
        return

    from sslstudio.pretext import TASKS

    tasks = [t for t in args.tasks.split(",") if t] or list(TASKS)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        count = args.batch_size * (WARMUP_STEPS + args.steps)  # one epoch: no image twice
        write_folder(work / "images", count, max(args.image_size, 64))
        # build the cache once, outside every timed window
        run_child(next(iter(tasks)), "engine", args, work)
        print(f"{args.backbone}, batch {args.batch_size}, {args.image_size} px, device "
              f"{args.device}, {args.steps} timed steps after {WARMUP_STEPS} warm-up, "
              f"best of {args.repeats}")
        header = (f"| task | bare img/s | engine img/s | engine / bare | peak RSS bare MB | "
                  f"peak RSS engine MB |")
        gpu = args.device in ("cuda", "auto") and _has_cuda()
        if gpu:
            header += " peak GPU bare MB | peak GPU engine MB |"
        print(header)
        print("|" + "---|" * (header.count("|") - 1))
        for task in tasks:
            best = {"bare": None, "engine": None}
            for _ in range(args.repeats):
                for side in ("bare", "engine"):
                    result = run_child(task, side, args, work)
                    if best[side] is None or result["images_per_s"] > best[side]["images_per_s"]:
                        best[side] = result
            bare, engine = best["bare"], best["engine"]
            row = (f"| {task} | {bare['images_per_s']:.0f} | {engine['images_per_s']:.0f} | "
                   f"{engine['images_per_s'] / bare['images_per_s']:.2f} | "
                   f"{bare['peak_rss_mb']:.0f} | {engine['peak_rss_mb']:.0f} |")
            if gpu:
                row += f" {bare.get('peak_gpu_mb', 0):.0f} | {engine.get('peak_gpu_mb', 0):.0f} |"
            print(row, flush=True)


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
