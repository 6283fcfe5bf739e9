"""Export page: export to ONNX from a model folder, verify, and try the exported file."""

from __future__ import annotations

from pathlib import Path

import pytest

import pytestqt  # noqa: F401 - a declared test dependency: missing means failure, not a skip


def trained_model(store, truth, tmp_path):
    """A real linear-probe model folder registered in the project (no GUI involved)."""
    from test_gui_classifier import pretrained_run

    from sslstudio.data.decode import load_square
    from sslstudio.export.model_dir import save_result
    from sslstudio.train.classifier import fit_classifier

    import numpy as np

    run_dir = pretrained_run(store)
    relpaths = sorted(truth)
    images = np.stack([load_square(store.image_root / r, 32) for r in relpaths])
    result = fit_classifier(run_dir, images, truth, "linear", ids=relpaths)
    model_dir = store.models_dir / "probe"
    save_result(model_dir, result, 32)
    store.add_model(model_dir, {"method": "linear", "metrics": {
        "balanced_accuracy": result.metrics.get("balanced_accuracy")}})
    return model_dir, result.classes


def test_export_onnx_then_try_an_image(qtbot, tmp_path, toy_folder):
    from test_gui_pretrain import make_context, make_project

    from sslstudio.gui.pages.export_page import ExportPage

    store, truth = make_project(tmp_path, toy_folder)
    _, classes = trained_model(store, truth, tmp_path)
    page = ExportPage(make_context(store))
    qtbot.addWidget(page)
    assert page.model_combo.count() == 1
    page.destination.setText(str(tmp_path / "exported"))
    assert page.selected_formats() == ["onnx"]
    with qtbot.waitSignal(page.exported, timeout=60_000) as blocker:
        assert page.export()
    [result] = blocker.args[0]
    assert Path(result["path"]).is_file() and result["path"].endswith(".onnx")
    assert result["max_abs_diff"] is not None and result["max_abs_diff"] < 1e-4
    assert "max |Δ|" in page.results_table.item(0, 2).text()
    image = store.image_root / sorted(truth)[0]
    with qtbot.waitSignal(page.predicted, timeout=30_000) as blocker:
        assert page.try_image(str(image))
    label, confidence = blocker.args
    assert label in classes and 0.0 < confidence <= 1.0
    assert label in page.prediction.text()
    project_dir = store.project_dir
    store.close()

    # Reopening the project shows the export again, ready to try.
    from sslstudio.project import ProjectStore

    reopened = ProjectStore.open(project_dir)
    again = ExportPage(make_context(reopened))
    qtbot.addWidget(again)
    assert again.results_table.rowCount() == 1
    assert again.results_table.item(0, 1).text() == result["path"]
    assert again.try_model.currentData() == result["path"]
    reopened.close()


def test_trying_a_broken_image_says_why(qtbot, tmp_path, toy_folder):
    from test_gui_pretrain import make_context, make_project

    from sslstudio.gui.pages.export_page import ExportPage

    store, truth = make_project(tmp_path, toy_folder)
    trained_model(store, truth, tmp_path)
    page = ExportPage(make_context(store))
    qtbot.addWidget(page)
    page.destination.setText(str(tmp_path / "exported"))
    with qtbot.waitSignal(page.exported, timeout=60_000):
        page.export()
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    page.try_image(str(broken))
    qtbot.waitUntil(lambda: page.try_worker is None, timeout=30_000)
    assert page.last_prediction is None
    assert "Could not predict" in page.prediction.text()
    store.close()
