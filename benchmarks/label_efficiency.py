"""Label efficiency: accuracy vs labels per class for scratch / linear / finetune / semi / propagate / selftrain.

  # your data: a folder, its labels CSV, a test folder (one subfolder per class), and a run
  # (or --pretrain-minutes M: pretrain on FOLDER here with the real engine first)
  python benchmarks/label_efficiency.py --folder IMAGES --labels labels.csv \
      --test TEST_FOLDER --run RUN_DIR [--levels 1,5,10,25] [--seeds 3] [--json out.json]

  # built in: scikit-learn's handwritten digits (8×8 scaled to 32 px, split train/test), or
  # the app's sample dataset; both pretrain with the real engine on the training images
  python benchmarks/label_efficiency.py --digits --pretrain-minutes 3 --json digits.json
  python benchmarks/label_efficiency.py --sample --pretrain-minutes 3 --json sample.json
  # 5,000 real MNIST digits from the sheet in OpenCV's samples (apt-get install opencv-doc)
  python benchmarks/label_efficiency.py --mnist --pretrain-minutes 10 --task contrastive
  # letters A-J from every installed font, test fonts never seen (benchmarks/font_letters.py)
  python benchmarks/label_efficiency.py --fonts --pretrain-minutes 10 --task contrastive

  # label choice: random draws vs suggestions (k-centre / k-means picks at once, or "app":
  # the Label page's "What to label next?" rounds, exactly as a user gets them)
  ... --choices random,kcenter,kmeans,app --choice-methods linear,semi

  # quick: generated glyph images, a brief rotation pretraining done here
  python benchmarks/label_efficiency.py --quick [--json out.json]

  # selftrain variants on a run pretrained earlier (--work keeps the images, --run the backbone)
  ... --fonts --work /tmp/le/fonts --run /tmp/le/fonts/fonts-run --selftrain-option threshold=0.8

  # mirroring: the app's per-folder choice (auto, the default), always, or never
  ... --mnist --work /tmp/le/mnist --run /tmp/le/mnist/mnist-run --mirror off

  # float32 throughout instead of bf16 where the CPU/GPU has it natively (pretraining, selftrain)
  ... --precision float32

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
sys.path.insert(0, str(Path(__file__).resolve().parent))   # font_letters beside this file

from sslstudio.commands.arguments import positive_float, positive_int  # noqa: E402
from sslstudio.commands.classify import MIRROR_CHOICES  # noqa: E402
from sslstudio.train.downstream import ClassifierOptions, fit_classifier  # noqa: E402
from sslstudio.train.downstream.label_efficiency import (format_markdown, format_table,  # noqa: E402
                                                        label_efficiency)
from sslstudio.train.downstream.selftrain import SelfTrainSettings  # noqa: E402
from host_share import CpuShare, describe  # noqa: E402


def decode(folder: Path, relpaths: list[str], size: int) -> np.ndarray:
    from sslstudio.commands.classify import decode_folder

    pixels, good, bad = decode_folder(folder, relpaths, size)
    if bad:
        raise SystemExit(f"unreadable images in {folder}: {bad[:3]}")
    return pixels


def user_data(args) -> tuple:
    from sslstudio.export.predict import list_images
    from sslstudio.project.labels_io import read_csv_labels
    from sslstudio.train.downstream import load_pretrained

    backbone, config = load_pretrained(args.run)
    size = args.size or int(config.get("image_size") or 64)
    folder, test = Path(args.folder), Path(args.test)
    train_paths = list_images(folder)
    labels, _ = read_csv_labels(Path(args.labels), train_paths, folder)
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


def pretrain_here(folder: Path, out: Path, args) -> Path:
    """A pretraining run on `folder` with the real engine and a fixed budget; returns the run."""
    from sslstudio.commands.pretrain import parse_task_options
    from sslstudio.train.pretrain import PretrainConfig, run_pretraining

    try:
        options = parse_task_options(args.task_option or [])
    except ValueError as error:
        raise SystemExit(str(error)) from None
    config = PretrainConfig(folder=str(folder), out=str(out), task=args.task,
                            task_options=options,
                            image_size=args.size or 32,
                            # a step budget makes runs comparable across machines and loads
                            minutes=None if args.pretrain_steps else args.pretrain_minutes,
                            steps=args.pretrain_steps,
                            batch_size=args.pretrain_batch, device="auto",
                            seed=args.pretrain_seed,
                            precision=args.precision,
                            preview_every=0, quality_every=0, checkpoint_every=0,
                            cache_dir=str(out.parent / "cache"))
    started = time.perf_counter()
    summary = run_pretraining(config)
    budget = (f"{args.pretrain_steps} steps" if args.pretrain_steps
              else f"{args.pretrain_minutes} min")
    print(f"pretraining ({args.task}, {budget} budget, seed {args.pretrain_seed}): "
          f"{summary.get('status')}, {summary.get('steps')} steps in "
          f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
    return out


def write_folder(folder: Path, images: np.ndarray, names: list[str]) -> list[str]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    relpaths = []
    for i, img in enumerate(images):
        relpath = f"{names[i]}/{i:05d}.png" if names else f"{i:05d}.png"
        (folder / relpath).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / relpath)
        relpaths.append(relpath)
    return relpaths


def digits_data(args, work: Path) -> tuple:
    """sklearn's 1,797 handwritten digits, 8×8 → 32 px RGB; a stratified half is the test set."""
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    size = args.size or 32
    digits = load_digits()
    small = (digits.images / 16.0 * 255).clip(0, 255).astype(np.uint8)
    images = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)
                                  .convert("RGB")) for im in small])
    names = [str(t) for t in digits.target]
    train, test = train_test_split(np.arange(len(images)), test_size=0.4, random_state=0,
                                   stratify=digits.target)
    return _split_data(args, work, images, names, train, test, "digits")


OPENCV_DIGITS = "/usr/share/doc/opencv-doc/examples/data/digits.png"


def mnist_data(args, work: Path) -> tuple:
    """5,000 MNIST handwritten digits (20×20, 500 per class) from the sheet OpenCV's samples
    ship (Debian: `apt-get install opencv-doc`), scaled to --size; 40 % is the training set
    (pretrained on and labelled from), 60 % the test set."""
    from PIL import Image
    from sklearn.model_selection import train_test_split

    sheet_path = Path(args.mnist_sheet)
    if not sheet_path.is_file():
        raise SystemExit(f"{sheet_path} not found: install Debian's opencv-doc or give "
                         "--mnist-sheet PATH to OpenCV's samples/data/digits.png")
    sheet = np.asarray(Image.open(sheet_path).convert("L"))
    cell, size = 20, args.size or 32
    rows, cols = sheet.shape[0] // cell, sheet.shape[1] // cell   # 50 × 100; 5 rows per digit
    images, names = [], []
    for r in range(rows):
        for c in range(cols):
            tile = Image.fromarray(sheet[r * cell:(r + 1) * cell, c * cell:(c + 1) * cell])
            images.append(np.asarray(tile.resize((size, size), Image.BILINEAR).convert("RGB")))
            names.append(str(r * 10 // rows))
    images = np.stack(images)
    train, test = train_test_split(np.arange(len(images)), test_size=0.6, random_state=0,
                                   stratify=names)
    return _split_data(args, work, images, names, train, test, "mnist")


def fonts_data(args, work: Path) -> tuple:
    """Letters A-J from every usable installed font (benchmarks/font_letters.py); 60 % of the
    fonts are the test set, so test letters come from typefaces never pretrained on or
    labelled."""
    from font_letters import font_letters, split_by_font

    images, names, fonts = font_letters(size=args.size or 32)
    train, test = split_by_font(fonts, test_share=0.6)
    print(f"font letters: {len(set(fonts))} fonts, {len(train)} training and {len(test)} "
          "test images", file=sys.stderr)
    return _split_data(args, work, images, names, train, test, "fonts")


def sample_data(args, work: Path) -> tuple:
    """The app's sample dataset (`sslstudio sample`), decoded at --size; a stratified 40 % is
    the test set."""
    from sklearn.model_selection import train_test_split

    from sslstudio.data.sample import generate_sample_dataset, sample_truth

    dest = work / "sample-source"
    generate_sample_dataset(dest, n_per_class=args.sample_per_class)
    truth = sample_truth(dest)
    relpaths = sorted(truth)
    images = decode(dest, relpaths, args.size or 32)
    names = [truth[r] for r in relpaths]
    train, test = train_test_split(np.arange(len(images)), test_size=0.4, random_state=0,
                                   stratify=names)
    return _split_data(args, work, images, names, train, test, "sample")


def _split_data(args, work, images, names, train, test, tag) -> tuple:
    """Pretrain (unlabelled) on the training images only; ids/labels/test labels for the run."""
    from sslstudio.train.downstream import load_pretrained

    folder = work / f"{tag}-train"
    write_folder(folder, images[train], [])
    run = Path(args.run) if args.run else pretrain_here(folder, work / f"{tag}-run", args)
    backbone, _ = load_pretrained(run)
    ids = [f"train:{i}" for i in train] + [f"test:{i}" for i in test]
    pixels = np.concatenate([images[train], images[test]])
    labels = {f"train:{i}": names[i] for i in train}
    test_labels = {f"test:{i}": names[i] for i in test}
    return backbone, pixels, ids, labels, test_labels


def selftrain_settings(args) -> SelfTrainSettings:
    """SelfTrainSettings from --precision and any --selftrain-option KEY=VALUE."""
    import dataclasses

    from sslstudio.commands.pretrain import parse_task_options

    options = parse_task_options(args.selftrain_option or [])
    known = {f.name for f in dataclasses.fields(SelfTrainSettings)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise SystemExit(f"error: selftrain has no setting {', '.join(unknown)} "
                         f"(settings: {', '.join(sorted(known))})")
    return SelfTrainSettings(**{"precision": args.precision, **options})


def quick_data(args) -> tuple:
    from sslstudio.models.backbones import create_backbone

    torch.manual_seed(0)
    size = args.size or 32
    images, names = glyph_dataset(args.quick_per_class, size, seed=0)
    backbone = create_backbone("small_cnn", image_size=size)
    started = time.perf_counter()
    steps = rotation_pretrain(backbone, images, args.pretrain_steps or 300)
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
    parser.add_argument("--digits", action="store_true", help="sklearn digits, pretrained here")
    parser.add_argument("--sample", action="store_true", help="the sample dataset, pretrained here")
    parser.add_argument("--mnist", action="store_true",
                        help="5,000 MNIST digits from OpenCV's samples sheet, pretrained here")
    parser.add_argument("--mnist-sheet", default=OPENCV_DIGITS)
    parser.add_argument("--fonts", action="store_true",
                        help="letters A-J rendered from the installed fonts, split by font")
    parser.add_argument("--sample-per-class", type=positive_int, default=300)
    parser.add_argument("--pretrain-minutes", type=positive_float, default=3.0,
                        help="pretraining budget when no --run is given")
    parser.add_argument("--pretrain-batch", type=positive_int, default=64)
    parser.add_argument("--task", default="rotation", help="pretext task for pretraining here")
    parser.add_argument("--task-option", action="append", metavar="KEY=VALUE",
                        help="an option of the pretext task (repeatable, as in sslstudio pretrain), e.g. shear=15")
    parser.add_argument("--mirror", choices=tuple(MIRROR_CHOICES), default="auto",
                        help="mirror-averaged features and mirrored training views: auto (the "
                             "app's default: off for handed images such as text and digits), "
                             "on, or off, as classify --mirror (the Label page's "
                             "suggestions stay mirror-averaged)")
    parser.add_argument("--selftrain-option", action="append", metavar="KEY=VALUE",
                        help="a SelfTrainSettings field for selftrain (repeatable), e.g. epochs=40")
    parser.add_argument("--work", help="folder for generated images and runs (default: a temp dir)")
    parser.add_argument("--choices", default="random",
                        help="label choice: random (level per class), uniform (level x classes at random), "
                             "kcenter, kmeans, app (comma separated)")
    parser.add_argument("--choice-methods", default="linear,semi",
                        help="methods fitted on the suggested (non-random) label choices")
    parser.add_argument("--quick-per-class", type=positive_int, default=60)
    parser.add_argument("--pretrain-steps", type=positive_int,
                        help="step budget for pretraining here, instead of --pretrain-minutes "
                             "(--quick: 300)")
    parser.add_argument("--pretrain-seed", type=int, default=0,
                        help="seed of the pretraining here (repeat runs with other seeds)")
    parser.add_argument("--linear-timing", type=positive_int, metavar="N")
    parser.add_argument("--size", type=positive_int)
    parser.add_argument("--levels", default="1,5,10,25")
    parser.add_argument("--methods", default="scratch,linear,finetune,semi,propagate,selftrain")
    parser.add_argument("--seeds", type=positive_int, default=3)
    parser.add_argument("--epochs", type=positive_int, default=60,
                        help="scratch/finetune epochs (fixed, no validation); 20 under-trains "
                             "scratch with few labels: docs/benchmarks-classifier.md")
    parser.add_argument("--json", metavar="OUT")
    parser.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: all)")
    parser.add_argument("--precision", default="auto", choices=("auto", "float32"),
                        help="pretraining here and selftrain: auto = bf16 where native")
    args = parser.parse_args(argv)
    selftrain = selftrain_settings(args)   # a mistyped setting fails before any pretraining
    if args.threads:
        torch.set_num_threads(args.threads)

    machine = (f"{platform.machine()} {platform.processor() or ''} {torch.get_num_threads()} "
               f"threads, {__import__('os').cpu_count()} cores, torch {torch.__version__}")
    if args.linear_timing:
        out = linear_timing(args.linear_timing, args.size or 64)
        out["machine"] = machine
        print(json.dumps(out, indent=2))
        return 0
    import tempfile

    share = CpuShare().start()   # pretraining here and every fit: read at the end
    work = Path(args.work or tempfile.mkdtemp(prefix="sslstudio-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.quick:
        backbone, images, ids, labels, test_labels = quick_data(args)
    elif args.digits:
        backbone, images, ids, labels, test_labels = digits_data(args, work)
    elif args.sample:
        backbone, images, ids, labels, test_labels = sample_data(args, work)
    elif args.mnist:
        backbone, images, ids, labels, test_labels = mnist_data(args, work)
    elif args.fonts:
        backbone, images, ids, labels, test_labels = fonts_data(args, work)
    elif all((args.folder, args.labels, args.test)) and (args.run or args.pretrain_minutes):
        if not args.run:
            args.run = str(pretrain_here(Path(args.folder), work / "run", args))
        backbone, images, ids, labels, test_labels = user_data(args)
    else:
        parser.error("give --quick, --digits, --sample, --mnist, --fonts, --linear-timing N, or --folder --labels "
                     "--test with --run or --pretrain-minutes")
    levels = tuple(int(v) for v in args.levels.split(","))
    methods = tuple(args.methods.split(","))
    choices = tuple(args.choices.split(","))
    choice_methods = tuple(args.choice_methods.split(","))
    started = time.perf_counter()
    report = label_efficiency(backbone, images, labels, ids=ids, levels=levels, methods=methods,
                              seeds=tuple(range(args.seeds)),
                              options=ClassifierOptions(
                                  epochs=args.epochs, device=None,
                                  augment_average=MIRROR_CHOICES[args.mirror],
                                  selftrain=selftrain),
                              test_labels=test_labels, choices=choices,
                              choice_methods=choice_methods,
                              progress=lambda d, t: print(f"  {d}/{t} fits", file=sys.stderr,
                                                          flush=True))
    columns = list(methods) + [f"{m} ({c})" for c in choices if c != "random"
                               for m in choice_methods]
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["machine"] = machine
    report["test_images"] = len(test_labels)
    report["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    report["command"] = " ".join(sys.argv)
    share.stop()
    report["cpu_stolen_by_host"] = share.stolen
    print(format_table(report["summary"], tuple(columns)))
    print()
    print(format_markdown(report["summary"], tuple(columns)))
    if report["skipped_levels"]:
        print(f"skipped levels (a class has too few labels): {report['skipped_levels']}")
    print(f"{report['seconds']} s; accuracy on {len(test_labels)} test images; CPU time "
          f"stolen by the host (other guests of a shared machine): {describe(share.stolen)}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
