"""Stand-alone prediction and evaluation from exported files; the preprocessing parity guard."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from conftest import write_toy_folder
from sslstudio.cli import main
from sslstudio.export.exporters import export_model
from sslstudio.export.model_dir import ModelFileError
from sslstudio.export.predict import load_predictor, predict_folder
from test_classifier import make_run, new_backbone, requires


@pytest.fixture(scope="module")
def classified(tmp_path_factory):
    """`sslstudio classify` on a folder (40 px images, so resizing really happens), exported."""
    requires("sslstudio.data.decode")
    root = tmp_path_factory.mktemp("predict")
    truth = write_toy_folder(root / "images", per_class=6, size=40, seed=2)
    (root / "images" / "broken.png").write_bytes(b"\x89PNG not really")
    labelled = {r: c for i, (r, c) in enumerate(truth.items()) if i % 6 < 3}
    with open(root / "labels.csv", "w", newline="") as handle:
        handle.write("filename,label\n")
        handle.writelines(f"{r},{c}\n" for r, c in labelled.items())
    make_run(root / "run", new_backbone())
    rc = main(["classify", str(root / "images"), "--run", str(root / "run"), "--labels",
               str(root / "labels.csv"), "--method", "linear", "--out", str(root / "model")])
    assert rc == 0
    exported = {}
    for fmt, name in (("torchscript", "m.pt"), ("onnx", "m.onnx"),
                      ("safetensors", "m.safetensors")):
        export_model(root / "model", fmt, root / name)
        exported[fmt] = root / name
    return root, truth, labelled, exported


def test_classify_writes_model_and_least_confident_first_predictions(classified):
    root, truth, labelled, _ = classified
    assert (root / "model" / "model.safetensors").is_file()
    with open(root / "model" / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["filename"] for r in rows} == set(truth) - set(labelled)
    confidences = [float(r["confidence"]) for r in rows]
    assert confidences == sorted(confidences)
    assert list(rows[0]) == ["filename", "label", "confidence", "p_blue", "p_green", "p_red"]


@pytest.mark.parametrize("fmt", ["torchscript", "onnx", "safetensors"])
def test_exported_file_predicts_like_the_app(classified, fmt):
    """Same labels (and near-equal confidences) as the in-app classifier on the same images."""
    root, truth, labelled, exported = classified
    with open(root / "model" / "predictions.csv", newline="") as handle:
        in_app = {r["filename"]: r for r in csv.DictReader(handle)}
    result = predict_folder(exported[fmt], root / "images", batch_size=4)
    outside = {name: (label, conf) for name, label, conf, _ in result.rows}
    assert set(outside) == set(truth)
    for name, row in in_app.items():
        assert outside[name][0] == row["label"]
        assert abs(outside[name][1] - float(row["confidence"])) < 1e-4
    assert [name for name, _ in result.bad] == ["broken.png"]


def test_predict_cli_writes_csv_and_reports_bad_images(classified, tmp_path, capsys):
    root, truth, _, exported = classified
    out = tmp_path / "pred.csv"
    assert main(["predict", str(exported["onnx"]), str(root / "images"), "--csv", str(out)]) == 0
    err = capsys.readouterr().err
    assert "broken.png" in err and "predicting" in err       # bad file named, progress shown
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(truth)
    assert all(abs(sum(float(r[f"p_{c}"]) for c in ("blue", "green", "red")) - 1) < 1e-4
               for r in rows)


@pytest.mark.parametrize("name", ["m.pt", "m.onnx", "m.safetensors"])
def test_corrupted_model_file_is_a_clear_error(classified, tmp_path, capsys, name):
    root, _, _, exported = classified
    damaged = tmp_path / name
    data = (root / name).read_bytes()
    damaged.write_bytes(data[: len(data) // 3])               # truncated download
    with pytest.raises(ModelFileError, match=name.replace(".", r"\.")):
        load_predictor(damaged)
    assert main(["predict", str(damaged), str(root / "images")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and name in err and "Traceback" not in err


def test_evaluate_json_on_an_imagefolder(classified, tmp_path, capsys):
    root, _, _, exported = classified
    test = tmp_path / "test"
    write_toy_folder(test, per_class=4, size=40, seed=9)
    (test / "unknown_class").mkdir()
    write_toy_folder(tmp_path / "extra", per_class=1, size=40, seed=3)
    (tmp_path / "extra" / "red" / "red_000.png").rename(test / "unknown_class" / "x.png")
    for model in (root / "model", exported["onnx"]):
        assert main(["evaluate", str(model), str(test), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["n"] == 12
        assert report["classes"] == ["blue", "green", "red"]
        assert np.array(report["confusion_matrix"]).sum() == 12
        assert report["accuracy"] > 0.6
        assert set(report["per_class"]) == {"blue", "green", "red"}
        assert report["skipped_unknown_classes"] == {"unknown_class": 1}


def test_evaluate_takes_the_true_classes_from_a_labels_csv(classified, tmp_path, capsys):
    """A flat test folder with a filename,label CSV (what `classify` reads) gives the same
    figures as the same images sorted into class subfolders."""
    import shutil

    root, _, _, _ = classified
    sorted_test = tmp_path / "sorted"
    truth = write_toy_folder(sorted_test, per_class=4, size=40, seed=9)
    flat = tmp_path / "flat"
    flat.mkdir()
    rows = ["filename,label"]
    for i, (relpath, cls) in enumerate(sorted(truth.items())):
        shutil.copy(sorted_test / relpath, flat / f"img_{i:03d}.png")
        if i != 0:                    # one image the CSV does not name
            rows.append(f"img_{i:03d}.png,{cls}")
    rows.append("gone.png,red")       # a name with no file
    (tmp_path / "truth.csv").write_text("\n".join(rows) + "\n")
    model = root / "model"
    assert main(["evaluate", str(model), str(sorted_test), "--json"]) == 0
    by_folder = json.loads(capsys.readouterr().out)
    assert main(["evaluate", str(model), str(flat), "--labels", str(tmp_path / "truth.csv"),
                 "--json"]) == 0
    by_csv = json.loads(capsys.readouterr().out)
    assert by_folder["n"] == 12 and by_csv["n"] == 11
    assert by_csv["skipped_unlabelled"] == 1 and by_csv["labels_not_found"] == ["gone.png"]
    first_class = sorted(truth.items())[0][1]
    expected = np.array(by_folder["confusion_matrix"])
    first_row = ["blue", "green", "red"].index(first_class)
    assert np.array(by_csv["confusion_matrix"]).sum(axis=1)[first_row] == \
        expected.sum(axis=1)[first_row] - 1
    # without --labels the flat folder holds no class subfolder: a reason, not 0 figures
    assert main(["evaluate", str(model), str(flat)]) == 2
    err = capsys.readouterr().err
    assert "nothing to evaluate" in err and "--labels" in err and "blue, green, red" in err


def test_classify_cli_reports_bad_input_clearly(classified, tmp_path, capsys):
    root, _, _, _ = classified
    args = ["classify", str(root / "images"), "--labels", str(root / "labels.csv"),
            "--out", str(tmp_path / "m")]
    assert main([*args, "--run", str(tmp_path / "no_run")]) == 2
    assert "no_run holds no backbone.safetensors" in capsys.readouterr().err
    one_class = tmp_path / "one.csv"
    one_class.write_text("filename,label\nred/red_000.png,red\nred/red_001.png,red\n")
    assert main(["classify", str(root / "images"), "--run", str(root / "run"), "--labels",
                 str(one_class), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "labels 2 images of" in err and "all 'red'" in err and "at least two classes" in err
    assert "decoded" not in err and "decoding" not in err   # told before any image is read
    assert not (tmp_path / "m").exists()
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    for out, why in ((a_file, "it is a file"), (a_file / "model", f"{a_file} is a file")):
        assert main(["classify", str(root / "images"), "--run", str(root / "run"), "--labels",
                     str(root / "labels.csv"), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"cannot save the model in {out}: {why}" in err, err
        assert "fitting" not in err and "Traceback" not in err   # refused before the fit


def test_classify_mirror_choice_reaches_the_saved_model(classified, tmp_path, capsys):
    from sslstudio.export.model_dir import load_model_dir

    root, _, _, _ = classified
    args = ["classify", str(root / "images"), "--run", str(root / "run"), "--labels",
            str(root / "labels.csv"), "--method", "linear"]
    for choice, mirrored in (("off", False), ("on", True)):
        assert main([*args, "--mirror", choice, "--out", str(tmp_path / choice)]) == 0
        assert load_model_dir(tmp_path / choice)[0].flip_average is mirrored
    # the older spelling still means off, and saying both ways is refused before any fit
    assert main([*args, "--no-flip-average", "--out", str(tmp_path / "old")]) == 0
    assert load_model_dir(tmp_path / "old")[0].flip_average is False
    capsys.readouterr()
    assert main([*args, "--no-flip-average", "--mirror", "on", "--out", str(tmp_path / "x")]) == 2
    assert "contradicts --mirror on" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_fitting_with_one_class_names_what_it_got():
    from sslstudio.models.backbones import create_backbone
    from sslstudio.train.downstream.fit import fit_classifier

    images = np.zeros((4, 16, 16, 3), np.uint8)
    for labels, got in ((["red", None, None, None], "got 1 label in 1 class"),
                        (["red", "red", None, None], "got 2 labels in 1 class")):
        with pytest.raises(ValueError, match=got):
            fit_classifier(create_backbone("small_cnn", image_size=16), images, labels,
                           "linear")


def test_classify_reuses_pretrainings_decoded_cache(tmp_path, capsys):
    """After pretraining decoded the folder, classify decodes only what was added since and
    predicts what a fresh decode of the folder predicts."""
    from sslstudio.data.cache import DecodedCache
    from sslstudio.data.scan import scan_folder
    from test_classifier import SIZE

    images = tmp_path / "images"
    truth = write_toy_folder(images, per_class=6, size=40, seed=4)
    (images / "broken.png").write_bytes(b"\x89PNG not really")
    with open(tmp_path / "labels.csv", "w", newline="") as handle:
        handle.write("filename,label\n")
        handle.writelines(f"{r},{c}\n" for i, (r, c) in enumerate(truth.items()) if i % 6 < 3)
    make_run(tmp_path / "run", new_backbone())
    # what pretraining leaves beside its run folder (RUN/../cache)
    DecodedCache.build(images, scan_folder(images).images, SIZE, tmp_path / "cache")
    write_toy_folder(tmp_path / "later", per_class=1, size=40, seed=5)
    (tmp_path / "later" / "red" / "red_000.png").rename(images / "added.png")

    def classify(out: str) -> dict[str, tuple[str, float]]:
        assert main(["classify", str(images), "--run", str(tmp_path / "run"), "--labels",
                     str(tmp_path / "labels.csv"), "--method", "linear",
                     "--out", str(tmp_path / out)]) == 0
        with open(tmp_path / out / "predictions.csv", newline="") as handle:
            return {r["filename"]: (r["label"], float(r["confidence"]))
                    for r in csv.DictReader(handle)}

    from_cache = classify("m1")
    err = capsys.readouterr().err
    assert "reusing pretraining's decoded images" in err
    assert "skipped unreadable image broken.png" in err
    assert "added.png" in DecodedCache.open(tmp_path / "cache", SIZE).relpaths
    assert "added.png" in from_cache

    import shutil
    shutil.rmtree(tmp_path / "cache")
    decoded_here = classify("m2")
    err = capsys.readouterr().err
    assert "reusing" not in err and "skipped unreadable image broken.png" in err
    assert set(from_cache) == set(decoded_here)
    for name, (label, confidence) in from_cache.items():
        assert decoded_here[name][0] == label
        assert abs(decoded_here[name][1] - confidence) < 1e-5


def test_classify_passes_selftrain_epochs_to_the_fit(classified, tmp_path, monkeypatch):
    """--selftrain-epochs sets SelfTrainSettings.epochs of the fit (the default stays 20)."""
    import sslstudio.train.downstream as downstream

    root, _, _, _ = classified
    seen = []

    def fake_fit(run_dir, images, labels, method, options, **kwargs):
        seen.append(options.selftrain.epochs)
        raise ValueError("stop here")

    monkeypatch.setattr(downstream, "fit_classifier", fake_fit)
    args = ["classify", str(root / "images"), "--run", str(root / "run"), "--labels",
            str(root / "labels.csv"), "--method", "selftrain", "--out", str(tmp_path / "m")]
    assert main(args) == 2 and main([*args, "--selftrain-epochs", "40"]) == 2
    assert seen == [20.0, 40.0]


def test_classify_warns_about_a_short_pretraining(classified, tmp_path, capsys):
    """A backbone after a few hundred steps classifies poorly; the CLI says so up front."""
    import shutil

    root, _, _, _ = classified
    run = tmp_path / "run"
    shutil.copytree(root / "run", run)
    config = json.loads((run / "backbone.json").read_text())
    assert "pretrain_steps" not in config       # a hand-made run: nothing reliable to say
    args = ["classify", str(root / "images"), "--run", str(run), "--labels",
            str(root / "labels.csv"), "--method", "knn"]
    assert main([*args, "--out", str(tmp_path / "m1")]) == 0
    assert "short pretraining" not in capsys.readouterr().err
    (run / "backbone.json").write_text(json.dumps({**config, "pretrain_steps": 289}))
    assert main([*args, "--out", str(tmp_path / "m2")]) == 0
    assert "warning: short pretraining (289 steps)" in capsys.readouterr().err
    (run / "backbone.json").write_text(json.dumps({**config, "pretrain_steps": 5000}))
    assert main([*args, "--out", str(tmp_path / "m3")]) == 0
    assert "short pretraining" not in capsys.readouterr().err
