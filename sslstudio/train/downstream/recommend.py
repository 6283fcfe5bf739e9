"""Which method fits how many labels: a short guide and a recommended default."""

from __future__ import annotations

METHOD_GUIDE = {
    "linear": "Linear probe: the pretrained backbone stays frozen; a regularised logistic "
              "regression is fitted on its features. Seconds on a CPU, hard to overfit. "
              "Best with a few hundred labels or fewer.",
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


def recommend_method(n_labels: int, n_classes: int, device: str = "cpu") -> tuple[str, str]:
    """(method, one-sentence reason) from the label count, the class count and the device."""
    per_class = n_labels / max(1, n_classes)
    gpu = device not in ("cpu", None)
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
