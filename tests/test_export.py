"""Model folder and exports: round trips, verification, model cards, clear errors."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from sslstudio.export.exporters import ExportError, card_path_for, export_model
from sslstudio.export.model_dir import ModelFileError, load_model_dir, save_result
from sslstudio.train.downstream import fit_classifier
from test_classifier import SIZE, labels_every, make_run, new_backbone, toy_images


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A linear-probe and a kNN model folder from a 'pretrained run'."""
    root = tmp_path_factory.mktemp("export")
    images, classes = toy_images(per_class=6)
    run = make_run(root / "run", new_backbone())
    dirs = {}
    for method in ("linear", "knn"):
        result = fit_classifier(run, images, labels_every(classes, 3, 6), method)
        dirs[method] = save_result(root / f"model_{method}", result, SIZE)
    return root, dirs, images


def test_model_folder_round_trips_with_its_card(fitted):
    _, dirs, images = fitted
    model, card = load_model_dir(dirs["linear"])
    assert card["classes"] == ["blue", "green", "red"]
    assert card["image_size"] == SIZE and card["method"] == "linear"
    assert card["pretext_task"] == "rotation"
    assert "centre-cropped to 32×32" in card["preprocessing"]
    assert card["metrics"]["scheme"] == "leave-one-out"
    x = torch.from_numpy(images[:4]).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        probs = model(x)
    torch.testing.assert_close(probs.sum(1), torch.ones(4))


@pytest.mark.parametrize("method", ["linear", "knn"])
def test_onnx_matches_pytorch(fitted, method):
    import onnxruntime as ort

    root, dirs, _ = fitted
    out = root / f"{method}.onnx"
    card = export_model(dirs[method], "onnx", out)
    assert card["export"]["verification"]["max_abs_diff"] < 1e-4
    model, _ = load_model_dir(dirs[method])
    x = torch.rand(5, 3, SIZE, SIZE)                       # another batch size than the export
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        assert np.abs(got - model(x).numpy()).max() < 1e-4
    saved = json.loads(card_path_for(out).read_text())
    assert saved["classes"] == ["blue", "green", "red"] and saved["export"]["format"] == "onnx"
    assert saved["normalization"]["mean"] == [0.485, 0.456, 0.406]


def test_torchscript_reloads_equal(fitted):
    root, dirs, _ = fitted
    out = root / "linear.pt"
    export_model(dirs["linear"], "torchscript", out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)   # TorchScript is deprecated upstream
        reloaded = torch.jit.load(str(out))
    model, _ = load_model_dir(dirs["linear"])
    x = torch.rand(3, 3, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x), model(x), rtol=0, atol=1e-6)


def test_safetensors_export_carries_its_card(fitted):
    from safetensors import safe_open

    root, dirs, _ = fitted
    out = root / "linear.safetensors"
    card = export_model(dirs["linear"], "safetensors", out)
    with safe_open(str(out), framework="pt") as handle:
        inside = json.loads(handle.metadata()["sslstudio"])
    assert inside["classes"] == card["classes"]
    assert card_path_for(out).is_file()


def test_unknown_format_and_missing_or_damaged_folders_are_clear_errors(fitted, tmp_path):
    _, dirs, _ = fitted
    with pytest.raises(ExportError, match="unknown export format 'tflite'"):
        export_model(dirs["linear"], "tflite", tmp_path / "m.tflite")
    with pytest.raises(ModelFileError, match="model folder not found"):
        export_model(tmp_path / "nothing", "onnx", tmp_path / "m.onnx")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.json").write_text("{ not json")
    with pytest.raises(ModelFileError, match=r"model\.json: not a readable"):
        load_model_dir(broken)
    (broken / "model.json").write_text((dirs["linear"] / "model.json").read_text())
    (broken / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(ModelFileError, match=r"model\.safetensors: damaged"):
        load_model_dir(broken)


def test_export_cli(fitted, tmp_path, capsys):
    from sslstudio.cli import main

    _, dirs, _ = fitted
    assert main(["export", str(dirs["knn"]), "--format", "torchscript",
                 "--out", str(tmp_path)]) == 0
    assert (tmp_path / "model.pt").is_file() and (tmp_path / "model.pt.json").is_file()
    assert "max abs difference" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "missing"), "--format", "onnx",
                 "--out", str(tmp_path / "x.onnx")]) == 2
    assert "model folder not found" in capsys.readouterr().err


def test_flip_averaged_features_survive_export(tmp_path):
    """With augment_average the model itself averages with the mirror image, exported too."""
    import onnxruntime as ort

    from sslstudio.train.downstream import ClassifierOptions

    images, classes = toy_images(per_class=4)
    result = fit_classifier(new_backbone(), images, labels_every(classes, 2, 4), "linear",
                            ClassifierOptions(augment_average=True))
    folder = save_result(tmp_path / "m", result, SIZE)
    model, card = load_model_dir(folder)
    assert card["head"]["flip_average"] is True and model.flip_average
    x = torch.from_numpy(images[:2]).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(torch.flip(x, dims=[3])))  # mirror-invariant
    export_model(folder, "onnx", tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        assert np.abs(got - model(x).numpy()).max() < 1e-4
    in_app = {p.id: p.label for p in result.predictions}
    with torch.no_grad():
        rows = [int(i) for i in in_app]
        xs = torch.from_numpy(images[rows]).permute(0, 3, 1, 2).float() / 255
        labels = [result.classes[j] for j in model(xs).argmax(1).tolist()]
    assert labels == list(in_app.values())
