"""Walk the whole flow in a real window on the built-in sample and save a screenshot per page.

    xvfb-run -a -s "-screen 0 1400x900x24" .venv/bin/python docs/screenshots/tour.py [--minutes 1.5]

Drives the real widgets, the way the pytest-qt tests do, but on the sample
dataset with a real (short) pretraining run: open the sample → pretrain →
inspect (previews, embedding map) → label the suggested images (10 per class on
average) → the recommended classifier → export to ONNX and try an image. The
labels come from the sample's hidden truth file so the tour is repeatable; a
person would press 1–6 in the Label page instead. Writes
start/data/pretrain/inspect/label/classifier(-training)/export.png next to this file (or into
--out). Uses its own SSLSTUDIO_HOME under /tmp.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

from app_window import AppWindow

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--minutes", type=float, default=1.5, help="pretraining budget")
    parser.add_argument("--task", default=None, help="default: the page's default task")
    parser.add_argument("--per-class", type=int, default=10, help="labels per class")
    parser.add_argument("--home", type=Path, default=Path(tempfile.gettempdir()) / "sslstudio-tour")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    shown = AppWindow(args.home, "tour")
    window, settle, wait_until = shown.window, shown.settle, shown.wait_until

    def shot(name: str) -> None:
        settle(0.5)
        path = args.out / f"{name}.png"
        window.grab().save(str(path))
        print(f"tour: {path}", file=sys.stderr)

    settle(0.5)
    shot("start")

    shown.open_sample()
    store = window.ctx.store
    window.show_page("Data")
    settle(3.0)  # thumbnails decode in the background
    shot("data")

    # ---- Pretrain: a short real run with the page's defaults, other than the budget.
    page = window.show_page("Pretrain")
    if args.task:
        page.select_task(args.task)
    page.budget_kind.setCurrentText("minutes")
    page.budget_value.setValue(args.minutes)
    page.preview_every.setValue(20)
    settle(1.0)
    if not page.start_run():
        raise SystemExit("tour: the run did not start")
    wait_until(lambda: not page.is_running(), args.minutes * 60 + 240, "the pretraining run")
    settle(1.0)
    shot("pretrain")

    inspect = window.show_page("Inspect")
    settle(0.5)
    if inspect.compute_map():
        wait_until(lambda: not window.ctx.busy, 300, "the embedding map")

    # ---- Label: press "What to label next?" and label every suggestion from the hidden truth
    # (a person would use the 1–6 keys) until N per class on average are labelled.
    truth_file = Path(store.image_root) / ".sslstudio-truth.csv"
    with open(truth_file, newline="") as handle:
        truth = {row["filename"]: row["label"] for row in csv.DictReader(handle)}
    labels_page = window.show_page("Label")
    classes = sorted(set(truth.values()))
    for name in classes:
        labels_page.add_class(name)
    budget = args.per_class * len(classes)
    while len(labels_page.labels) < budget:
        picked = labels_page.suggest_next()
        if not picked:   # features first, in the background
            wait_until(lambda: bool(labels_page.suggestions), 300, "the suggestions")
            picked = labels_page.suggestions
        picked = [p for p in picked if p in truth][:budget - len(labels_page.labels)]
        if not picked:
            raise SystemExit("tour: the suggestions ran out before the budget")
        for name in classes:
            chosen = [p for p in picked if truth[p] == name]
            if chosen:
                labels_page.assign_class(name, chosen)
        settle(0.3)
    settle(1.0)
    shot("label")
    window.show_page("Inspect")  # the map, now coloured by the new labels
    shot("inspect")

    classifier = window.show_page("Classifier")
    settle(0.5)  # the page preselects its recommended method: the default path a user takes
    if not classifier.train():
        raise SystemExit("tour: the classifier did not start")
    # selftrain (the recommendation) trains the network twice: several minutes on a CPU,
    # so the bar says how long is left
    wait_until(lambda: "ETA" in classifier.progress.text() or not classifier.is_running(),
               600, "the classifier's time estimate")
    if classifier.is_running():
        shot("classifier-training")
    wait_until(lambda: not classifier.is_running(), 1500, "the classifier")
    settle(1.0)
    shot("classifier")

    export = window.show_page("Export")
    export.refresh_models()
    for fmt, check in export.format_checks.items():
        check.setChecked(fmt == "onnx")
    export.destination.setText(str(args.home / "exports"))
    if not export.export():
        raise SystemExit("tour: export did not start")
    wait_until(lambda: export.worker is None, 300, "the export")
    example = Path(store.image_root) / sorted(truth)[-1]
    export.try_image(str(example))
    wait_until(lambda: "Predicting" not in export.prediction.text(), 120, "the prediction")
    shot("export")

    window.close()
    shown.app.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())
