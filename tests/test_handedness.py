"""Handed images (text, digits) are found without labels and left unmirrored by default."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from sslstudio.train.downstream import ClassifierOptions, fit_classifier
from sslstudio.train.downstream.handedness import MIN_IMAGES, mirrored_farther_share
from sslstudio.train.downstream.inputs import as_image_set
from test_semi import tiny_backbone


def glyphs(per_class: int, seed: int, mirror_p: float) -> tuple[np.ndarray, list[str]]:
    """L, F and 7 in grey at small random offsets; each mirrored with probability mirror_p
    (0: a handed set like print; 0.5: one whose mirror image is as likely as itself)."""
    rng = np.random.default_rng(seed)
    images, classes = [], []
    for cls in ("L", "F", "7"):
        for _ in range(per_class):
            img = Image.new("L", (24, 24), int(rng.integers(0, 80)))
            draw, ink = ImageDraw.Draw(img), int(rng.integers(170, 256))
            r = int(rng.integers(6, 9))
            x, y = (12 + rng.integers(-2, 3, 2)).tolist()
            if cls in ("L", "F"):
                draw.rectangle([x - r, y - r, x - r + 2, y + r], fill=ink)
            if cls == "L":
                draw.rectangle([x - r, y + r - 2, x + r, y + r], fill=ink)
            if cls in ("F", "7"):
                draw.rectangle([x - r, y - r, x + r, y - r + 2], fill=ink)
            if cls == "F":
                draw.rectangle([x - r, y - 1, x + r // 2, y + 1], fill=ink)
            if cls == "7":
                draw.line([(x + r, y - r), (x - r // 2, y + r)], fill=ink, width=2)
            pixels = np.asarray(img.convert("RGB"))
            images.append(pixels[:, ::-1] if rng.random() < mirror_p else pixels)
            classes.append(cls)
    return np.ascontiguousarray(np.stack(images)), classes


def test_mirrored_print_looks_unlike_the_rest_and_mirrored_photos_do_not():
    for seed in range(3):
        handed, _ = glyphs(40, seed, mirror_p=0.0)
        either_way, _ = glyphs(40, seed, mirror_p=0.5)
        assert mirrored_farther_share(as_image_set(handed)) >= 0.9
        assert mirrored_farther_share(as_image_set(either_way)) <= 0.65
    too_few, _ = glyphs(MIN_IMAGES // 3 - 1, 0, mirror_p=0.0)
    assert mirrored_farther_share(as_image_set(too_few)) is None


def test_copies_of_the_same_images_do_not_make_a_folder_look_handed():
    # each image saved twice, once with a little noise (a re-encoded copy): an image's
    # copy is nearer to it than any mirror image, yet the folder is no more handed
    for seed in range(3):
        either_way, _ = glyphs(40, seed, mirror_p=0.5)
        noise = np.random.default_rng(seed).integers(-3, 4, either_way.shape)
        copies = np.clip(either_way + noise, 0, 255).astype(np.uint8)
        folder = np.concatenate([either_way, either_way, copies])
        assert mirrored_farther_share(as_image_set(folder)) <= 0.65
    # and copies do not count towards the images needed to judge
    few, _ = glyphs(MIN_IMAGES // 6, 0, mirror_p=0.0)
    assert mirrored_farther_share(as_image_set(np.concatenate([few] * 4))) is None


def test_the_default_mirrors_unless_the_images_are_handed_and_says_why():
    for mirror_p, mirrored in ((0.0, False), (0.5, True)):
        images, classes = glyphs(30, 1, mirror_p)
        labels = {str(i): c for i, c in enumerate(classes) if i % 30 < 5}
        result = fit_classifier(tiny_backbone(), images, labels, "linear",
                                ClassifierOptions(device="cpu"))
        assert result.model.flip_average is mirrored
        assert result.info["mirror"] is mirrored
        notes = " ".join(result.metrics["notes"])
        assert ("images not mirrored" in notes) is not mirrored
    # the user's word wins: mirroring on although the images are handed
    images, classes = glyphs(30, 1, 0.0)
    labels = {str(i): c for i, c in enumerate(classes) if i % 30 < 5}
    forced = fit_classifier(tiny_backbone(), images, labels, "linear",
                            ClassifierOptions(device="cpu", augment_average=True))
    assert forced.model.flip_average is True


def test_classify_leaves_handed_images_unmirrored_unless_told_and_says_how(tmp_path, capsys):
    from PIL import Image

    from sslstudio.cli import main
    from sslstudio.export.model_dir import load_model_dir
    from test_classifier import make_run

    images, classes = glyphs(30, 1, mirror_p=0.0)
    folder = tmp_path / "glyphs"
    folder.mkdir()
    rows = ["filename,label"]
    for i, (pixels, cls) in enumerate(zip(images, classes)):
        Image.fromarray(pixels).save(folder / f"{i:03d}.png")
        if i % 30 < 5:
            rows.append(f"{i:03d}.png,{cls}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    run = make_run(tmp_path / "run", tiny_backbone())
    args = ["classify", str(folder), "--run", str(run), "--labels", str(tmp_path / "labels.csv"),
            "--method", "linear"]
    assert main([*args, "--out", str(tmp_path / "auto")]) == 0
    assert load_model_dir(tmp_path / "auto")[0].flip_average is False
    out = capsys.readouterr()
    assert "images not mirrored" in out.out + out.err and "--mirror on" in out.out + out.err
    assert main([*args, "--mirror", "on", "--out", str(tmp_path / "on")]) == 0
    assert load_model_dir(tmp_path / "on")[0].flip_average is True
