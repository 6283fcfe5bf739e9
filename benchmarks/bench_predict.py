"""Prediction throughput: `sslstudio predict` (predict_folder) against a bare loop.

    python benchmarks/bench_predict.py                      # 3,000 sample JPEGs, 96 px
    python benchmarks/bench_predict.py --images 10000 --size 32 --threads 2

A model folder is made from a random small_cnn backbone and a linear head fitted on the
sample's true labels (its accuracy does not matter here, only its speed). Then, side by
side on the same files, best of --repeats:

* decode only: load_square on every file (the app's pixel convention), no model;
* forward only: the model on the already decoded images, in batches;
* bare loop: decode + forward written out in a few lines of PyTorch;
* predict_folder: what `sslstudio predict MODEL FOLDER` and `evaluate` run, and the same
  with the contiguous NCHW copy it made before 2026-12-07;
* the same with the exported ONNX file (onnxruntime), when onnxruntime is installed.

Prints images/s and the ratio to the bare loop. Everything goes into a temporary folder
under /tmp, removed afterwards.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_model(folder: Path, model_dir: Path, size: int) -> None:
    from sslstudio.data.decode import load_square
    from sslstudio.data.sample import sample_truth
    from sslstudio.export.model_dir import save_result
    from sslstudio.export.predict import list_images
    from sslstudio.models.backbones import create_backbone
    from sslstudio.train.downstream import ClassifierOptions, fit_classifier

    truth = sample_truth(folder)
    relpaths = [r for r in list_images(folder) if r in truth][:300]
    images = np.stack([load_square(folder / r, size) for r in relpaths])
    backbone = create_backbone("small_cnn", image_size=size)
    result = fit_classifier(backbone, images, [truth[r] for r in relpaths], "linear",
                            ClassifierOptions(device="cpu", validate=False,
                                              predict_unlabelled=False))
    save_result(model_dir, result, size)


def best_of(repeats: int, work) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--size", type=int, default=32, help="the model's image size")
    parser.add_argument("--file-size", type=int, default=96, help="pixels of the JPEG files")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args()

    import torch

    from sslstudio.data.decode import load_square
    from sslstudio.data.sample import CLASSES, generate_sample_dataset
    from sslstudio.export.exporters import export_model
    from sslstudio.export.model_dir import load_model_dir
    from sslstudio.export.predict import list_images, predict_folder

    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="sslstudio-bench-predict-", dir="/tmp"))
    try:
        folder = work / "images"
        generate_sample_dataset(folder, n_per_class=-(-args.images // len(CLASSES)),
                                size=args.file_size)
        make_model(folder, work / "model", args.size)
        relpaths = list_images(folder)
        n = len(relpaths)
        model, _ = load_model_dir(work / "model")
        model.eval()
        decoded = np.stack([load_square(folder / r, args.size) for r in relpaths])

        def decode_only():
            for r in relpaths:
                load_square(folder / r, args.size)

        def forward(images: np.ndarray, contiguous: bool = False):
            with torch.no_grad():
                for start in range(0, len(images), args.batch_size):
                    # N×S×S×3 viewed as N×3×S×S is channels-last in memory
                    x = torch.from_numpy(images[start:start + args.batch_size]) \
                        .permute(0, 3, 1, 2).float().div_(255)
                    if contiguous:
                        x = x.contiguous()
                    torch.softmax(model(x), 1)

        def bare_loop():
            batch = []
            for r in relpaths:
                batch.append(load_square(folder / r, args.size))
                if len(batch) == args.batch_size:
                    forward(np.stack(batch))
                    batch.clear()
            if batch:
                forward(np.stack(batch))

        rows = [("decode only (load_square)", best_of(args.repeats, decode_only)),
                ("forward only (decoded already)", best_of(args.repeats, lambda: forward(decoded))),
                ("forward only, NCHW contiguous", best_of(args.repeats,
                                                          lambda: forward(decoded, True))),
                ("bare loop: decode + forward", best_of(args.repeats, bare_loop))]
        bare = rows[-1][1]
        rows.append(("predict_folder, model folder", best_of(args.repeats, lambda: predict_folder(
            work / "model", folder, args.batch_size))))
        # the same with the contiguous NCHW float copy predict made before 2026-12-07
        from sslstudio.export.predict import Predictor, _nchw_float, load_predictor
        app = load_predictor(work / "model")

        def nchw_copy(images_uint8):
            with torch.no_grad():   # the copy ONNX still gets
                return model(torch.from_numpy(_nchw_float(images_uint8))).double().numpy()
        before = Predictor(app.path, app.card, nchw_copy, "model-folder")
        rows.append(("predict_folder, NCHW copy (before)", best_of(
            args.repeats, lambda: predict_folder(work / "model", folder, args.batch_size,
                                                 predictor=before))))
        try:
            import onnxruntime  # noqa: F401
            export_model(work / "model", "onnx", work / "model.onnx")
            rows.append(("predict_folder, exported .onnx", best_of(
                args.repeats, lambda: predict_folder(work / "model.onnx", folder,
                                                     args.batch_size))))
        except ImportError:
            pass
        print(f"\n{n:,} JPEGs of {args.file_size} px → {args.size} px, batch {args.batch_size}, "
              f"torch threads {torch.get_num_threads()}, best of {args.repeats}")
        print(f"{'':34} {'seconds':>8} {'images/s':>9} {'× bare':>7}")
        for name, seconds in rows:
            print(f"{name:34} {seconds:8.2f} {n / seconds:9,.0f} {seconds / bare:7.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
