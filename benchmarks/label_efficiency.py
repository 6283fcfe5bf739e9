"""Label efficiency: accuracy vs labels per class for scratch / linear / finetune / knn.

  # your data: a folder, its labels CSV, a test folder (one subfolder per class), a run
  python benchmarks/label_efficiency.py --folder IMAGES --labels labels.csv \
      --test TEST_FOLDER --run RUN_DIR [--levels 1,5,10,25] [--seeds 3] [--json out.json]

  # quick: generated glyph images, a brief rotation pretraining done here
  python benchmarks/label_efficiency.py --quick [--json out.json]

  # how long a linear probe takes for N labelled images on this machine
  python benchmarks/label_efficiency.py --linear-timing 3000

Prints a mean ± std table (accuracy on the test images) and optionally writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sslstudio.train.downstream import ClassifierOptions, fit_classifier  # noqa: E402
from sslstudio.train.downstream.label_efficiency import format_table, label_efficiency  # noqa: E402


def decode(folder: Path, relpaths: list[str], size: int) -> np.ndarray:
    from sslstudio.commands.classify import decode_folder

    pixels, good, bad = decode_folder(folder, relpaths, size)
    if bad:
        raise SystemExit(f"unreadable images in {folder}: {bad[:3]}")
    return pixels


def user_data(args) -> tuple:
    from sslstudio.commands.classify import read_labels_csv
    from sslstudio.export.predict import list_images
    from sslstudio.train.downstream import load_pretrained

    backbone, config = load_pretrained(args.run)
    size = args.size or int(config.get("image_size") or 64)
    folder, test = Path(args.folder), Path(args.test)
    train_paths = list_images(folder)
    labels, _ = read_labels_csv(Path(args.labels), train_paths)
    test_paths = [p for p in list_images(test) if "/" in p]
    images = np.concatenate([decode(folder, train_paths, size), decode(test, test_paths, size)])
    ids = train_paths + [f"test:{p}" for p in test_paths]
    test_labels = {f"test:{p}": p.split("/", 1)[0] for p in test_paths}
    return backbone, images, ids, labels, test_labels


GLYPHS = ("T", "L", "F", "triangle")


def glyph_dataset(per_class: int, size: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Upright glyphs in random colours on random backgrounds: only the shape tells the class
    (colour says nothing), and upright shapes are what a rotation pretext learns to read."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    images, names = [], []
    for cls in GLYPHS:
        for _ in range(per_class):
            bg, fg = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
            while np.abs(fg - bg).sum() < 250:
                fg = rng.integers(0, 256, 3)
            noise = rng.integers(-15, 15, (size, size, 3))
            img = Image.fromarray(np.clip(bg + noise, 0, 255).astype(np.uint8))
            draw, c = ImageDraw.Draw(img), tuple(int(v) for v in fg)
            r = int(rng.integers(size // 4, size // 3 + 1))
            w = max(2, r // 2)
            x, y = (size // 2 + rng.integers(-size // 10, size // 10 + 1, 2)).tolist()
            if cls == "T":
                draw.rectangle([x - r, y - r, x + r, y - r + w], fill=c)
                draw.rectangle([x - w // 2, y - r, x + w // 2, y + r], fill=c)
            elif cls == "L":
                draw.rectangle([x - r, y - r, x - r + w, y + r], fill=c)
                draw.rectangle([x - r, y + r - w, x + r, y + r], fill=c)
            elif cls == "F":
                draw.rectangle([x - r, y - r, x - r + w, y + r], fill=c)
                draw.rectangle([x - r, y - r, x + r, y - r + w], fill=c)
                draw.rectangle([x - r, y - w // 2, x + r // 2, y + w // 2], fill=c)
            else:
                draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=c)
            images.append(np.asarray(img))
            names.append(cls)
    return np.stack(images), names


def rotation_pretrain(backbone, images: np.ndarray, steps: int, batch: int = 32) -> int:
    """A brief rotation-prediction pretraining (stands in for a run when none is given);
    stops early once the pretext is solved. Returns the steps taken."""
    head = torch.nn.Linear(backbone.num_features, 4)
    opt = torch.optim.Adam([*backbone.parameters(), *head.parameters()], lr=1e-3)
    x_all = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    backbone.train()
    running = 0.25
    for step in range(1, steps + 1):
        x = x_all[torch.randint(0, len(x_all), (batch,))]
        k = torch.randint(0, 4, (len(x),))
        x = torch.stack([torch.rot90(img, int(r), dims=(1, 2)) for img, r in zip(x, k)])
        out = head(backbone(x))
        loss = torch.nn.functional.cross_entropy(out, k)
        opt.zero_grad()
        loss.backward()
        opt.step()
        running = 0.9 * running + 0.1 * float((out.argmax(1) == k).float().mean())
        if running >= 0.98:
            break
    backbone.eval()
    return step


def quick_data(args) -> tuple:
    from sslstudio.models.backbones import create_backbone

    torch.manual_seed(0)
    size = args.size or 32
    images, names = glyph_dataset(args.quick_per_class, size, seed=0)
    backbone = create_backbone("small_cnn", image_size=size)
    started = time.perf_counter()
    steps = rotation_pretrain(backbone, images, args.pretrain_steps)
    print(f"rotation pretraining: {steps} steps in "
          f"{time.perf_counter() - started:.1f} s", file=sys.stderr)
    ids = [str(i) for i in range(len(images))]
    # the first half of each class is the labelled pool, the second half the test set
    labels, test_labels = {}, {}
    for i, name in enumerate(names):
        (labels if i % args.quick_per_class < args.quick_per_class // 2 else test_labels)[
            ids[i]] = name
    return backbone, images, ids, labels, test_labels


def linear_timing(n: int, size: int) -> dict:
    from sslstudio.models.backbones import create_backbone

    images, names = glyph_dataset(n // 4, size, seed=1)
    backbone = create_backbone("small_cnn", image_size=size)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    started = time.perf_counter()
    result = fit_classifier(backbone, images, names, "linear", ClassifierOptions(device="cpu"))
    total = time.perf_counter() - started
    started = time.perf_counter()
    fit_classifier(backbone, images, names, "linear", ClassifierOptions(device="cpu"))
    cached = time.perf_counter() - started
    return {"labelled_images": len(images), "image_size": size, "backbone": "small_cnn",
            "seconds_total": round(total, 2), "seconds_with_cached_features": round(cached, 2),
            "validation": result.metrics["scheme"], "C": result.info["C"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folder")
    parser.add_argument("--labels")
    parser.add_argument("--test")
    parser.add_argument("--run")
    parser.add_argument("--quick", action="store_true", help="generated data + brief pretraining")
    parser.add_argument("--quick-per-class", type=int, default=60)
    parser.add_argument("--pretrain-steps", type=int, default=300)
    parser.add_argument("--linear-timing", type=int, metavar="N")
    parser.add_argument("--size", type=int)
    parser.add_argument("--levels", default="1,5,10,25")
    parser.add_argument("--methods", default="scratch,linear,finetune,knn")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args(argv)

    machine = f"{platform.machine()} {torch.get_num_threads()} threads, torch {torch.__version__}"
    if args.linear_timing:
        out = linear_timing(args.linear_timing, args.size or 64)
        out["machine"] = machine
        print(json.dumps(out, indent=2))
        return 0
    if args.quick:
        backbone, images, ids, labels, test_labels = quick_data(args)
    elif all((args.folder, args.labels, args.test, args.run)):
        backbone, images, ids, labels, test_labels = user_data(args)
    else:
        parser.error("give --quick, --linear-timing N, or all of --folder --labels --test --run")
    levels = tuple(int(v) for v in args.levels.split(","))
    methods = tuple(args.methods.split(","))
    started = time.perf_counter()
    report = label_efficiency(backbone, images, labels, ids=ids, levels=levels, methods=methods,
                              seeds=tuple(range(args.seeds)),
                              options=ClassifierOptions(epochs=args.epochs, device=None),
                              test_labels=test_labels)
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["machine"] = machine
    report["test_images"] = len(test_labels)
    print(format_table(report["summary"], methods))
    if report["skipped_levels"]:
        print(f"skipped levels (a class has too few labels): {report['skipped_levels']}")
    print(f"{report['seconds']} s; accuracy on {len(test_labels)} test images")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
