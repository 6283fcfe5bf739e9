"""What a fixed CPU budget buys: pretraining settings side by side on the same images.

For each setting (task @ image size), the real engine (`run_pretraining`) trains for
the same wall-clock budget on the same folder; the table shows steps, images/s and
the leave-one-out kNN accuracy of the frozen features on labelled images (the
engine's own quality probe), next to two baselines that need no training: the
backbone at its random initialisation and the raw pixels.

    .venv/bin/python benchmarks/bench_cpu_budget.py [--images 10000] [--minutes 5]
        [--settings rotation@32,rotation@64,contrastive@32] [--labelled 1000]
        (a setting may end in :float32 or :auto to pin the precision, e.g.
         contrastive@32:float32,contrastive@32:auto compares float32 with CPU bf16)
        [--folder DIR --labels CSV]   # your own images instead of the sample

Without --folder it writes the built-in sample dataset (64 px files) with
--images images and uses its truth file for the labels.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def read_truth(path: Path) -> dict[str, str]:
    with open(path, newline="", encoding="utf-8") as handle:
        return {row[0]: row[1] for row in csv.reader(handle) if len(row) >= 2
                and row[0] not in ("filename", "relpath")}


def pick_labelled(truth: dict[str, str], count: int, seed: int = 0) -> dict[str, str]:
    rng = np.random.default_rng(seed)
    keys = sorted(truth)
    chosen = rng.choice(len(keys), size=min(count, len(keys)), replace=False)
    return {keys[i]: truth[keys[i]] for i in sorted(chosen)}


def baselines(folder: Path, labelled: dict[str, str], size: int) -> tuple[float, float]:
    """kNN accuracy of raw pixels and of a randomly initialised small_cnn, at `size` px."""
    import torch

    from sslstudio.commands.classify import decode_folder
    from sslstudio.models.backbones import create_backbone
    from sslstudio.train.quality import knn_accuracy

    relpaths = sorted(labelled)
    pixels, good, _ = decode_folder(folder, relpaths, size)
    pixels = pixels[:len(good)]
    labels = [labelled[r] for r in good]
    flat = pixels.reshape(len(pixels), -1).astype(np.float32) / 255.0
    raw = knn_accuracy(flat - flat.mean(axis=0), labels)
    torch.manual_seed(0)
    backbone = create_backbone("small_cnn", image_size=size).eval()
    with torch.no_grad():
        x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255.0
        feats = torch.cat([backbone(x[i:i + 256]) for i in range(0, len(x), 256)]).numpy()
    return raw, knn_accuracy(feats, labels)


def run_setting(folder: Path, work: Path, task: str, size: int, minutes: float,
                labelled: dict[str, str], batch: int, precision: str = "auto") -> dict:
    from sslstudio.train.pretrain import PretrainConfig, run_pretraining

    out = work / f"run-{task}-{size}-{precision}"
    config = PretrainConfig(folder=str(folder), out=str(out), task=task, backbone="small_cnn",
                            image_size=size, minutes=minutes, batch_size=batch, device="cpu",
                            precision=precision,
                            seed=0, preview_every=0, quality_every=0, labels=labelled,
                            cache_dir=str(work / f"cache-{size}"))
    config.quality_samples = len(labelled)
    t0 = time.perf_counter()
    summary = run_pretraining(config)
    wall = time.perf_counter() - t0
    import json

    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()
              if line.strip()]
    quality = [e for e in events if e["kind"] == "quality"]
    steps = [e for e in events if e["kind"] == "step"]
    speeds = [e.get("images_per_s") for e in steps[len(steps) // 2:] if e.get("images_per_s")]
    start = next((e for e in events if e["kind"] == "start"), {})
    return {"setting": f"{task}@{size} ({start.get('amp') or 'float32'})", "steps": summary["steps"],
            "images_seen": summary["steps"] * batch, "wall_s": wall,
            "images_per_s": float(np.median(speeds)) if speeds else float("nan"),
            "knn": quality[-1].get("knn_accuracy") if quality else None,
            "rank": quality[-1].get("effective_rank") if quality else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--settings", default="rotation@32,rotation@64,contrastive@32")
    parser.add_argument("--labelled", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--folder")
    parser.add_argument("--labels")
    parser.add_argument("--work")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="cpu-budget-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.folder:
        folder = Path(args.folder)
        from sslstudio.commands.pretrain import read_labels
        truth = read_labels(Path(args.labels), folder)
    else:
        from sslstudio.data.sample import CLASSES, TRUTH_FILE, generate_sample_dataset
        folder = work / "sample"
        generate_sample_dataset(folder, n_per_class=-(-args.images // len(CLASSES)), size=64)
        truth = read_truth(folder / TRUTH_FILE)
    labelled = pick_labelled(truth, args.labelled)
    settings = []
    for item in args.settings.split(","):
        spec, _, precision = item.partition(":")
        task, _, size = spec.partition("@")
        settings.append((task, int(size), precision or "auto"))
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, "
          f"{os.cpu_count()} cores, {len(truth)} images in {folder}, {len(labelled)} labelled "
          f"for kNN, {args.minutes:g} min per setting, batch {args.batch_size}", flush=True)
    rows = []
    for size in sorted({s for _, s, _ in settings}):
        raw, random_init = baselines(folder, labelled, size)
        rows.append({"setting": f"raw pixels @{size}", "knn": raw})
        rows.append({"setting": f"random small_cnn @{size}", "knn": random_init})
    for task, size, precision in settings:
        rows.append(run_setting(folder, work, task, size, args.minutes, labelled,
                                args.batch_size, precision))
        print(f"  done {rows[-1]['setting']}: kNN {rows[-1]['knn']}", flush=True)
    print("\n| setting | steps | images seen | images/s | kNN accuracy | effective rank |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        def f(key, fmt):
            value = r.get(key)
            return format(value, fmt) if isinstance(value, (int, float)) else "–"
        print(f"| {r['setting']} | {f('steps', 'd')} | {f('images_seen', 'd')} | "
              f"{f('images_per_s', '.0f')} | {f('knn', '.3f')} | {f('rank', '.0f')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
