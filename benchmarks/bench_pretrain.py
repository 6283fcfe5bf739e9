"""Engine throughput against a bare PyTorch loop, per pretext task, side by side.

    .venv/bin/python benchmarks/bench_pretrain.py [--steps 20] [--batch-size 64]
        [--image-size 64] [--backbone small_cnn] [--device cpu] [--tasks rotation,jigsaw]
        [--threads N]
    .venv/bin/python benchmarks/bench_pretrain.py --scale 2000,100000 [--tasks rotation]
        (engine memory against dataset size instead: Python objects and resident memory)
    .venv/bin/python benchmarks/bench_pretrain.py --profile [--steps 8] [--tasks ...]
        (the engine's loop time split by cProfile into compute and everything else: robust
        on a shared machine, where images/s measured minutes apart are not)
    .venv/bin/python benchmarks/bench_pretrain.py --layouts [--image-size 32] [--repeats 3]
        (the bare loop with NCHW tensors against channels_last, per task: the engine's
        memory-format choice)
    .venv/bin/python benchmarks/bench_pretrain.py --compiled [--image-size 32] [--repeats 2]
        (the bare loop with the model eager against torch.compile'd, per task, with the
        compile's own warm-up time: whether the engine should compile)

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


def uses_channels_last(args, device) -> bool:
    """The bare loop's memory format: the engine's choice (channels_last on CUDA only; on the
    CPU it measured faster or slower by task and thread count, docs/benchmarks-pretext.md)
    unless --layout names one."""
    if args.layout != "auto":
        return args.layout == "channels_last"
    return device.type == "cuda"


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
    if uses_channels_last(args, device):
        model = model.to(memory_format=torch.channels_last)
    return task, model, make_optimizer("adamw", model, 1e-3, 0.05)


def measure_bare(task_name: str, args) -> dict:
    import numpy as np
    import torch

    from sslstudio.train.device import mixed_precision, pick_device

    device = pick_device(args.device)
    task, model, optimizer = build_model(task_name, args, device)
    forward = torch.compile(model) if getattr(args, "compile_model", False) else model
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 255, (args.batch_size, args.image_size,
                                                    args.image_size, 3), dtype=np.uint8))
    x = images.to(device).permute(0, 3, 1, 2).float().div(255).contiguous(
        memory_format=torch.channels_last if uses_channels_last(args, device)
        else torch.contiguous_format)
    # the engine's precision: bf16 autocast where the GPU or CPU has it natively
    amp = mixed_precision(device, args.precision)

    def step():
        inputs, targets = task.make_batch(x)
        with torch.autocast(device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            outputs = forward(inputs)
        loss, _ = task.loss(outputs, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return loss

    warm_start = time.perf_counter()
    for _ in range(WARMUP_STEPS):
        loss = step()
    float(loss.detach())
    warmup_s = time.perf_counter() - warm_start   # with --compiled: mostly the compile
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    float(loss.detach())  # wait for the device
    seconds = time.perf_counter() - start
    out = {"images_per_s": args.batch_size * args.steps / seconds, "peak_rss_mb": peak_rss_mb(),
           "warmup_s": warmup_s}
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


def profile_main(args) -> None:
    """Where an engine step's time goes, from cProfile: a split that holds on a busy machine
    (both parts slow down together), unlike images/s measured minutes apart."""
    import cProfile
    import pstats

    import torch

    from sslstudio.pretext import TASKS
    from sslstudio.train.pretrain import PretrainConfig, run_pretraining

    if args.threads:
        torch.set_num_threads(args.threads)
    tasks = [t for t in args.tasks.split(",") if t] or list(TASKS)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-profile-"))
    folder = work / "images"
    if not folder.exists():
        write_folder(folder, args.batch_size * 4, max(args.image_size, 64))
    print(f"{args.backbone}, batch {args.batch_size}, {args.image_size} px, {args.steps} steps, "
          f"threads {args.threads or 'default'}: seconds in the training loop (final quality "
          "probe left out)")
    print("| task | loop s | compute s | engine overhead | loader wait s | log points s | "
          "reseeding s | uint8→float s | final quality s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for task in tasks:
        config = PretrainConfig(folder=str(folder), out=tempfile.mkdtemp(prefix=f"prof-{task}-", dir=work),
                                task=task, backbone=args.backbone, image_size=args.image_size,
                                batch_size=args.batch_size, steps=args.steps, device=args.device,
                                preview_every=0, quality_every=0, checkpoint_every=0,
                                checkpoint_every_s=0, log_every=1, cache_dir=str(work / "cache"))
        profiler = cProfile.Profile()
        profiler.enable()
        run_pretraining(config)
        profiler.disable()
        stats = pstats.Stats(profiler).stats

        def cum(name: str, module: str = "sslstudio") -> float:
            return sum(v[3] for k, v in stats.items() if k[2] == name and module in k[0])

        quality = cum("measure_quality")
        loop = cum("loop") - quality
        seeding, convert = cum("seed_step"), cum("to_device_float", "loader.py")
        compute = cum("train_step") - seeding - convert - cum("set_lr") - cum("lr_at")
        print(f"| {task} | {loop:.1f} | {compute:.1f} | {100 * (loop - compute) / loop:.1f}% | "
              f"{cum('next', 'loader.py'):.2f} | {cum('log_point'):.2f} | {seeding:.3f} | "
              f"{convert:.3f} | {quality:.1f} |", flush=True)


def proc_status_mb(field: str) -> float:
    """A memory line of /proc/self/status (VmHWM, RssAnon, RssFile...) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure_scale(args, folder: Path, work: Path) -> dict:
    """A few engine steps on ``folder``: Python objects and memory once training runs."""
    import gc

    import numpy as np

    import sslstudio.data.cache as cache_module
    from sslstudio.train.pretrain import PretrainConfig, run_pretraining

    # Every file is the same picture: skip decoding it 100,000 times (the build itself, its
    # manifest and the memmapped array are the real ones; decoding speed is bench_data's).
    row = np.random.default_rng(0).integers(0, 255, (args.image_size, args.image_size, 3),
                                            dtype=np.uint8).tobytes()
    cache_module._decode_stream = lambda paths, size, workers: ((row, "") for _ in paths)
    seen: dict = {}

    def listener(event):
        if event["kind"] == "step" and event["step"] == 3:
            gc.collect()
            seen.update(gc_objects=len(gc.get_objects()), rss_anon_mb=proc_status_mb("RssAnon"),
                        rss_file_mb=proc_status_mb("RssFile"))

    config = PretrainConfig(folder=str(folder), out=tempfile.mkdtemp(prefix="scale-", dir=work),
                            task=args.one, backbone=args.backbone, image_size=args.image_size,
                            batch_size=args.batch_size, steps=4, device=args.device,
                            preview_every=0, quality_every=0, checkpoint_every=0,
                            checkpoint_every_s=0, log_every=1, cache_dir=str(folder) + "-cache")
    run_pretraining(config, listeners=[listener])
    seen["peak_rss_mb"] = proc_status_mb("VmHWM")
    return seen


def write_linked_folder(root: Path, count: int, size: int) -> None:
    """``count`` image files that are hard links to one small PNG (cheap to make: the
    engine's memory is what is measured, not the decoder's speed)."""
    import numpy as np
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    source = root / "img_0000000.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(source)
    for i in range(1, count):
        target = root / f"img_{i:07d}.png"
        if i % 50_000 == 0:  # a file system allows some 65,000 links to one file
            source = target
            target.unlink(missing_ok=True)
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(target)
        elif not target.exists():
            os.link(source, target)


def scale_main(args) -> None:
    """Engine memory against dataset size (the 100,000-image check)."""
    counts = [int(c) for c in args.scale.split(",")]
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-scale-"))
    task = args.tasks.split(",")[0] if args.tasks else "rotation"
    print(f"{task}, {args.backbone}, batch {args.batch_size}, {args.image_size} px: memory once "
          "training runs (cache built beforehand; gc-tracked objects after gc.collect())")
    print("| images | cache MB on disk | gc objects | RssAnon MB | RssFile MB | peak RSS MB |")
    print("|---:|---:|---:|---:|---:|---:|")
    for count in counts:
        folder = work / f"images-{count}"
        write_linked_folder(folder, count, args.image_size)
        command = [sys.executable, __file__, "--one", task, "--side", "scale", "--work",
                   str(work), "--folder", str(folder), "--batch-size", str(args.batch_size),
                   "--image-size", str(args.image_size), "--backbone", args.backbone,
                   "--device", args.device, "--threads", str(args.threads)]
        started = time.perf_counter()
        for _ in range(2):  # the first run builds the cache; the second measures training only
            proc = subprocess.run(command, capture_output=True, text=True)
            print(f"  ({count} images: {time.perf_counter() - started:.0f} s)", file=sys.stderr)
        lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
        if not lines:
            raise RuntimeError(proc.stderr[-3000:])
        r = json.loads(lines[-1][7:])
        cache_mb = sum(f.stat().st_size for f in Path(str(folder) + "-cache").glob("*.npy")) / 2**20
        print(f"| {count:,} | {cache_mb:,.0f} | {r['gc_objects']:,} | {r['rss_anon_mb']:.0f} | "
              f"{r['rss_file_mb']:.0f} | {r['peak_rss_mb']:.0f} |", flush=True)


def child(args) -> None:
    work = Path(args.work)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.side == "scale":
        print("RESULT " + json.dumps(measure_scale(args, Path(args.folder), work)))
        return
    if args.side == "bare":
        result = measure_bare(args.one, args)
    else:
        result = measure_engine(args.one, args, work / "images", work)
    print("RESULT " + json.dumps(result))


def _child_command(task: str, side: str, args, work: Path, layout: str = "auto",
                   compile_model: bool = False) -> list[str]:
    """layout: auto = the engine's choice; contiguous / channels_last (float32) for --layouts.
    compile_model: the bare loop's model through torch.compile (--compiled)."""
    return [sys.executable, __file__, "--one", task, "--side", side, "--work", str(work),
            "--steps", str(args.steps), "--batch-size", str(args.batch_size),
            "--image-size", str(args.image_size), "--backbone", args.backbone,
            "--device", args.device, "--threads", str(args.threads), "--layout", layout,
            "--precision", "auto" if layout == "auto" else "float32"] + (
                ["--compile-model"] if compile_model else [])


def _result(task: str, side: str, stdout: str, stderr: str) -> dict:
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{task}/{side} failed:\n{stderr[-3000:]}")


def run_child(task: str, side: str, args, work: Path, layout: str = "auto",
              compile_model: bool = False) -> dict:
    proc = subprocess.run(_child_command(task, side, args, work, layout, compile_model),
                          capture_output=True, text=True)
    return _result(task, side, proc.stdout, proc.stderr)


def compiled_main(args) -> None:
    """The bare loop with the model eager and through torch.compile, per task, alternating:
    steady speed and the warm-up the compile costs (the first run of a task compiles from
    nothing; later processes reuse inductor's cache on disk)."""
    from sslstudio.pretext import TASKS

    tasks = [t for t in args.tasks.split(",") if t] or list(TASKS)
    print(f"bare loop, {args.backbone}, batch {args.batch_size}, {args.image_size} px, device "
          f"{args.device}, {args.steps} timed steps after {WARMUP_STEPS} warm-up, best of "
          f"{args.repeats}, threads {args.threads or 'default'}")
    print("| task | eager img/s | compiled img/s | compiled / eager | warm-up s eager | "
          "warm-up s compiled (first, later) |")
    print("|---|---:|---:|---:|---:|---:|")
    work = Path(tempfile.mkdtemp(prefix="bench-compile-"))
    for task in tasks:
        runs = {False: [], True: []}
        for _ in range(args.repeats):
            for compiled in (False, True):
                runs[compiled].append(run_child(task, "bare", args, work, "auto", compiled))
        best = {k: max(r["images_per_s"] for r in v) for k, v in runs.items()}
        warm = [r["warmup_s"] for r in runs[True]]
        print(f"| {task} | {_rate(best[False])} | {_rate(best[True])} | "
              f"{best[True] / best[False]:.2f} | {min(r['warmup_s'] for r in runs[False]):.1f} | "
              f"{warm[0]:.1f}, {min(warm[1:] or warm):.1f} |", flush=True)


LAYOUTS = ("contiguous", "channels_last")


def layouts_main(args) -> None:
    """The bare loop in both memory formats, per task, alternating (or at the same time with
    --together): what channels_last buys where the engine uses it."""
    from sslstudio.pretext import TASKS

    tasks = [t for t in args.tasks.split(",") if t] or list(TASKS)
    print(f"bare loop, {args.backbone}, batch {args.batch_size}, {args.image_size} px, device "
          f"{args.device}, float32, {args.steps} timed steps after {WARMUP_STEPS} warm-up, "
          f"best of {args.repeats}, threads {args.threads or 'default'}"
          + (", both layouts at the same time" if args.together else ""))
    print("| task | NCHW img/s | channels_last img/s | channels_last / NCHW |")
    print("|---|---:|---:|---:|")
    work = Path(tempfile.mkdtemp(prefix="bench-layouts-"))
    for task in tasks:
        best = dict.fromkeys(LAYOUTS, 0.0)
        for _ in range(args.repeats):
            if args.together:
                results = run_at_once(task, {layout: _child_command(task, "bare", args, work,
                                                                    layout)
                                             for layout in LAYOUTS})
            else:
                results = {layout: run_child(task, "bare", args, work, layout)
                           for layout in LAYOUTS}
            for layout, result in results.items():
                best[layout] = max(best[layout], result["images_per_s"])
        print(f"| {task} | {_rate(best['contiguous'])} | {_rate(best['channels_last'])} | "
              f"{best['channels_last'] / best['contiguous']:.2f} |", flush=True)


def run_at_once(task: str, commands: dict[str, list[str]]) -> dict[str, dict]:
    """Each command in its own process, all at the same time: on a shared machine they then
    see the same load (the scheduler shares the cores fairly), which sequential runs do not."""
    procs = {name: subprocess.Popen(command, text=True, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
             for name, command in commands.items()}
    return {name: _result(task, name, *proc.communicate()) for name, proc in procs.items()}


def run_together(task: str, args, work: Path) -> dict[str, dict]:
    """The bare loop and the engine at the same time (see run_at_once)."""
    return run_at_once(task, {side: _child_command(task, side, args, work)
                              for side in ("bare", "engine")})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--backbone", default="small_cnn")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tasks", default="")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads in each measuring process (0: torch's default)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--layout", default="auto", choices=("auto",) + LAYOUTS,
                        help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="auto", choices=("auto", "float32"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--layouts", action="store_true",
                        help="instead: the bare loop in NCHW against channels_last, per task")
    parser.add_argument("--compiled", action="store_true",
                        help="instead: the bare loop eager against torch.compile, per task")
    parser.add_argument("--compile-model", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--together", action="store_true",
                        help="run the two sides at the same time (fair on a shared machine; "
                             "use --threads 1 so each gets one core)")
    parser.add_argument("--profile", action="store_true",
                        help="instead: split the engine's loop time into compute and the rest")
    parser.add_argument("--scale", default="", metavar="N,N",
                        help="instead: engine memory for datasets of these sizes, e.g. 2000,100000")
    args = parser.parse_args()
    if args.one:
        child(args)
        return
    if args.scale:
        scale_main(args)
        return
    if args.profile:
        profile_main(args)
        return
    if args.layouts:
        layouts_main(args)
        return
    if args.compiled:
        compiled_main(args)
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
              f"best of {args.repeats}, threads {args.threads or 'default'}"
              + (", both sides at the same time" if args.together else ""))
        header = ("| task | bare img/s | engine img/s | engine / bare | peak RSS bare MB | "
                  "peak RSS engine MB |")
        gpu = args.device in ("cuda", "auto") and _has_cuda()
        if gpu:
            header += " peak GPU bare MB | peak GPU engine MB |"
        print(header)
        print("|" + "---|" * (header.count("|") - 1))
        for task in tasks:
            best = {"bare": None, "engine": None}
            for _ in range(args.repeats):
                if args.together:
                    results = run_together(task, args, work)
                else:
                    results = {side: run_child(task, side, args, work) for side in ("bare", "engine")}
                for side, result in results.items():
                    if best[side] is None or result["images_per_s"] > best[side]["images_per_s"]:
                        best[side] = result
            bare, engine = best["bare"], best["engine"]
            row = (f"| {task} | {_rate(bare['images_per_s'])} | {_rate(engine['images_per_s'])} | "
                   f"{engine['images_per_s'] / bare['images_per_s']:.2f} | "
                   f"{bare['peak_rss_mb']:.0f} | {engine['peak_rss_mb']:.0f} |")
            if gpu:
                row += f" {bare.get('peak_gpu_mb', 0):.0f} | {engine.get('peak_gpu_mb', 0):.0f} |"
            print(row, flush=True)


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.2g}" if value < 1 else f"{value:.1f}"


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
