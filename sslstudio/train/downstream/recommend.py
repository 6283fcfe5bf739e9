"""Which method fits how many labels: a short guide and a recommended default."""

from __future__ import annotations

METHOD_GUIDE = {
    "linear": "Linear probe: the pretrained backbone stays frozen; a regularised logistic "
              "regression is fitted on its standardised features (averaged with the mirror "
              "image's, unless the images are handed like text). Seconds on "
              "a CPU, hard to overfit. Uses the labelled images only.",
    "semi": "Semi-supervised: a linear probe that also learns from the unlabelled images. The "
            "classifier's confident predictions on each unlabelled image become targets for "
            "strongly augmented copies of it, kept class-balanced, so what a few labels teach "
            "spreads over the whole folder. Under a minute on a CPU for thousands of images; "
            "well ahead of the plain probe with 1-5 labels per class.",
    "propagate": "Label propagation: the labels spread to similar images along the nearest-"
                 "neighbour graph of the frozen features, then a linear classifier is fitted "
                 "on every image with its propagated label. Seconds on a CPU; measured best with "
                 "up to about 10 labels per class, when the classes form groups in feature "
                 "space (it cannot help on a backbone that has hardly been pretrained).",
    "selftrain": "Self-training: label propagation and a linear probe, blended as cross-"
                 "validation on your labels prefers, give every unlabelled image a first guess; "
                 "then the whole network trains on the labels and on its confident guesses for "
                 "strongly augmented copies of the unlabelled images (FixMatch), the guesses "
                 "improving as it learns. Minutes on a CPU for a few thousand images.",
    "partial": "Partial fine-tuning: the last stage(s) of the backbone train together with the "
               "head, the rest stays frozen. Fits with thousands of labels.",
    "finetune": "Full fine-tuning: every layer trains, the backbone with a smaller learning rate, "
                "with augmentation and early stopping. Pays off with tens of thousands of labels "
                "(and a GPU); with few labels it tends to overfit.",
    "scratch": "From scratch: the same network with random weights, trained on the labels only. "
               "A baseline that shows what pretraining bought you.",
    "knn": "k-nearest neighbours: each image takes the label of its most similar labelled images "
           "(cosine similarity of frozen features). Instant; a quick reference.",
}


# up to this many labels per class propagation measured best (docs/benchmarks-classifier.md);
# from 25 per class on the plain linear probe caught up
FEW_PER_CLASS = 10


def recommend_method(n_labels: int, n_classes: int, device: str = "cpu") -> tuple[str, str]:
    """(method, one-sentence reason) from the label count, the class count and the device."""
    per_class = n_labels / max(1, n_classes)
    gpu = device not in ("cpu", None)
    if per_class <= FEW_PER_CLASS and n_labels < 1000:
        # ranges: a 2-core float32 CPU (1,500 steps in 10 minutes) to a bf16 one (6,900)
        return "selftrain", (f"{n_labels} labels ({per_class:.0f} per class): self-training "
                             f"measured best at this few labels (10 suggested labels per "
                             f"class after 10 minutes of CPU pretraining: MNIST 94-97%, "
                             f"letters from many typefaces 75-79%, against 90-95% and 69-75% "
                             f"for a linear probe, 83% and 56-66% from scratch); it trains "
                             f"the whole network, so it takes minutes on a CPU (label "
                             f"propagation takes seconds and comes close on digits).")
    if n_labels < 1000 or per_class < 50:
        return "linear", (f"{n_labels} labels ({per_class:.0f} per class): a linear probe on the "
                          f"frozen backbone is the most reliable with this few labels.")
    if n_labels < 10000:
        if not gpu and n_labels > 3000:
            return "linear", (f"{n_labels} labels on a CPU: a linear probe finishes in seconds; "
                              f"partial fine-tuning may gain a little but is slow without a GPU.")
        return "partial", (f"{n_labels} labels: enough to adapt the last stage of the backbone "
                           f"(partial fine-tuning) without overfitting.")
    if not gpu:
        return "partial", (f"{n_labels} labels: full fine-tuning would fit, but on a CPU partial "
                           f"fine-tuning is the practical choice.")
    return "finetune", (f"{n_labels} labels: enough to fine-tune the whole network.")


# Below this many pretraining steps the features are young. On the sample, self-training
# got 61% of the unlabelled images right after 289 steps and 95% after 1,157 (Xvfb tours
# of 2026-12-06); the benchmark sets were measured from 1,500 steps
# (docs/benchmarks-classifier.md).
SHORT_PRETRAINING_STEPS = 1000


def pretraining_summary(run_dir) -> dict | None:
    """{"task", "steps", "image_size"} of a run's backbone, or None when backbone.json does
    not say (an older or hand-made run)."""
    import json
    from pathlib import Path

    try:
        info = json.loads((Path(run_dir) / "backbone.json").read_text(encoding="utf-8"))
        steps = int(info["pretrain_steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {"task": info.get("pretext_task") or "pretrained", "steps": steps,
            "image_size": info.get("image_size")}


def short_pretraining_warning(steps: int) -> str | None:
    """What to tell a user about to build a classifier on a briefly pretrained backbone."""
    if steps >= SHORT_PRETRAINING_STEPS:
        return None
    return (f"short pretraining ({steps:,} steps): expect a weak classifier. On the sample, "
            f"self-training got 61% of the unlabelled images right after 289 steps and 95% "
            f"after 1,157. Pretrain longer first.")
