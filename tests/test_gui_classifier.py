"""Classifier page and the confusion-matrix widget."""

from __future__ import annotations

from pathlib import Path

import pytest

import pytestqt  # noqa: E402,F401 - a declared test dependency: missing means failure
from conftest import FIT_TIMEOUT_MS  # noqa: E402


def test_confusion_matrix_cells_hold_their_images(qtbot):
    from sslstudio.gui.widgets.confusion_matrix import ConfusionMatrixView

    view = ConfusionMatrixView()
    qtbot.addWidget(view)
    truth = {"a1": "cat", "a2": "cat", "a3": "cat", "b1": "dog", "b2": "dog"}
    predicted = {"a1": "cat", "a2": "dog", "a3": "cat", "b1": "dog", "b2": "dog"}
    view.set_results(["cat", "dog"], truth, predicted)
    assert view.count("cat", "cat") == 2 and view.count("cat", "dog") == 1
    assert view.count("dog", "dog") == 2 and view.count("dog", "cat") == 0
    assert view.total() == len(truth)
    with qtbot.waitSignal(view.cell_opened) as blocker:
        view.cellClicked.emit(0, 1)
    assert blocker.args == ["cat", "dog", ["a2"]]


def pretrained_run(store, image_size: int = 32, name: str = "fixture-run", seed: int = 0):
    """A registered pretraining run folder holding a (randomly initialised) small backbone.

    The classifier page only needs backbone.safetensors; a real pretraining is
    covered by the pretrain tests and would only slow this one down.
    """
    pytest.importorskip("sslstudio.models.io", reason="the backbones are not written yet")
    import torch

    from sslstudio.models.backbones import create_backbone
    from sslstudio.models.io import save_backbone

    torch.manual_seed(seed)
    run_dir = store.runs_dir / name
    run_dir.mkdir(parents=True)
    backbone = create_backbone("small_cnn", image_size=image_size)
    save_backbone(run_dir / "backbone", backbone, {"name": "small_cnn",
                                                   "image_size": image_size})
    store.add_run("pretrain", run_dir, {"task": "rotation", "backbone": "small_cnn",
                                        "image_size": image_size}, status="completed")
    return run_dir


def test_the_recommendation_says_what_must_come_first(qtbot, tmp_path, toy_folder):
    """Before pretraining and labelling, the page recommended self-training 'at this few
    labels (0 per class)' beside 'only the from-scratch baseline can train'."""
    from test_gui_pretrain import make_context, make_project

    from sslstudio.gui.pages.classifier_page import ClassifierPage

    store, truth = make_project(tmp_path, toy_folder)
    page = ClassifierPage(make_context(store))
    qtbot.addWidget(page)
    text = page.recommendation.text()
    assert text.startswith("First pretrain a backbone") and "; then label images" in text
    assert "0 per class" not in text and text.endswith("is the recommended method.")
    store.set_labels({r: c for i, (r, c) in enumerate(sorted(truth.items())) if i % 2})
    page.refresh_runs()
    text = page.recommendation.text()
    assert text.startswith("First pretrain a backbone") and "label images" not in text
    pretrained_run(store)
    page.refresh_runs()
    assert page.run_combo.currentData() is not None
    assert page.recommendation.text().startswith("Recommended: ")
    page.run_combo.setCurrentIndex(page.run_combo.findData(None))   # scratch only, by hand
    assert page.recommendation.text().startswith("First pretrain a backbone")
    store.close()


def test_linear_probe_from_the_page(qtbot, tmp_path, toy_folder):
    from PySide6.QtCore import Qt
    from test_gui_pretrain import make_context, make_project

    from sslstudio.gui.pages.classifier_page import ClassifierPage

    store, truth = make_project(tmp_path, toy_folder)
    pretrained_run(store)
    # label 5 of the 8 images of each class; the rest are left for predictions
    labelled = {}
    for cls in ("red", "green", "blue"):
        members = sorted(r for r, c in truth.items() if c == cls)
        labelled.update({r: cls for r in members[:5]})
    store.set_labels(labelled)
    ctx = make_context(store)
    page = ClassifierPage(ctx)
    qtbot.addWidget(page)
    assert page.run_combo.currentData() is not None
    assert page.selected_method() == "selftrain"  # the recommendation for 5 labels per class
    assert "Recommended" in page.recommendation.text()
    page.set_method("linear")
    with qtbot.waitSignal(page.training_finished, timeout=FIT_TIMEOUT_MS) as blocker:
        assert page.train()
    assert blocker.args == [True], page.status_label.text()
    report = page.report
    assert report["n"] == len(labelled)  # every label validated once, by a model that never saw it
    assert page.confusion.total() == len(labelled)
    assert 0.0 <= report["accuracy"] <= 1.0
    # predictions for the 9 unlabelled images, least confident first
    assert len(page.predictions) == len(truth) - len(labelled)
    confidences = [page.predictions[r][1] for r in page.least_confident()]
    assert confidences == sorted(confidences)
    model = store.models()[-1]
    assert (Path(model["path"]) / "model.safetensors").is_file()
    assert getattr(ctx, "predictions", page.predictions) == page.predictions
    assert _saved_flip_average(model["path"]) is True           # mirrored by default
    # classes that are mirror images of each other: the saved model never mirrors
    assert page.mirror_combo.currentText() == "Decide from the images"
    page.mirror_combo.setCurrentIndex(page.mirror_combo.findText("Never", Qt.MatchStartsWith))
    with qtbot.waitSignal(page.training_finished, timeout=FIT_TIMEOUT_MS) as blocker:
        assert page.train()
    assert blocker.args == [True], page.status_label.text()
    assert _saved_flip_average(store.models()[-1]["path"]) is False
    store.close()


def _saved_flip_average(model_path) -> bool:
    from sslstudio.export.model_dir import load_model_dir

    model, _ = load_model_dir(model_path)
    return model.flip_average


def test_cancel_stops_training_without_a_model(qtbot, tmp_path, toy_folder):
    from test_gui_pretrain import make_context, make_project

    from sslstudio.gui.pages.classifier_page import ClassifierPage

    store, truth = make_project(tmp_path, toy_folder)
    pretrained_run(store)
    store.set_labels(truth)
    page = ClassifierPage(make_context(store))
    qtbot.addWidget(page)
    page.set_method("scratch")
    with qtbot.waitSignal(page.training_finished, timeout=FIT_TIMEOUT_MS) as blocker:
        page.train()
        page.cancel()
    assert blocker.args == [False]
    assert "Cancelled" in page.status_label.text()
    assert store.models() == []
    store.close()


def test_progress_bar_tells_the_time_left(qtbot, tmp_path, toy_folder):
    """Self-training takes minutes on a CPU: the bar says how many are left, and stops
    saying it when the fit ends."""
    from test_gui_pretrain import make_context, make_project

    from sslstudio.gui.pages.classifier_page import ClassifierPage
    from sslstudio.train.time_left import TimeLeft

    store, _ = make_project(tmp_path, toy_folder)
    page = ClassifierPage(make_context(store))
    qtbot.addWidget(page)
    now = [0.0]
    page.time_left = TimeLeft(clock=lambda: now[0])
    for t in range(100):                     # one unit a second, 200 units in all
        now[0] = float(t)
        page._on_progress(t, 200)
    assert page.progress.text().endswith("· ETA 1 min 41 s"), page.progress.text()
    page._on_error(RuntimeError("the disk is full"))
    assert "ETA" not in page.progress.text()
    assert "the disk is full" in page.status_label.text()
    store.close()


def _fitting_page(qtbot, tmp_path, toy_folder, method="finetune", prepare=None):
    """A page with a fit of ``method`` started in its worker process; ``prepare(store)``
    runs first."""
    from test_gui_pretrain import make_context, make_project

    from sslstudio.gui.pages.classifier_page import ClassifierPage

    store, truth = make_project(tmp_path, toy_folder)
    pretrained_run(store)
    store.set_labels(truth)
    if prepare is not None:
        prepare(store)
    page = ClassifierPage(make_context(store))
    qtbot.addWidget(page)
    page.set_method(method)
    assert page.train()
    return page, store


def test_the_fits_run_in_a_thread_are_those_that_train_no_network():
    """The app keeps its own list (it starts without torch); a method added to the core's
    list, or one that starts training a network, must move with it."""
    from sslstudio.gui.classifier_process import THREAD_METHODS
    from sslstudio.train.downstream.fit import HEAD_ONLY_METHODS, METHODS

    assert set(THREAD_METHODS) == set(HEAD_ONLY_METHODS) and set(THREAD_METHODS) < set(METHODS)


def test_a_killed_fit_process_becomes_a_readable_failure(qtbot, tmp_path, toy_folder):
    """The fit runs in its own process; when that process dies mid-fit, the page says so,
    the Train button comes back and nothing is saved."""
    page, store = _fitting_page(qtbot, tmp_path, toy_folder)
    process = page.worker
    job_dir = process.job_dir
    qtbot.waitUntil(lambda: process.process.processId() > 0, timeout=30_000)
    with qtbot.waitSignal(page.training_finished, timeout=FIT_TIMEOUT_MS) as blocker:
        process.process.kill()
    assert blocker.args == [False]
    text = page.status_label.text()
    assert "Training failed" in text and "crashed" in text, text
    assert page.train_button.isEnabled() and not page.is_running()
    assert store.models() == [] and not job_dir.exists() and not job_dir.parent.exists()
    store.close()


def test_closing_the_window_ends_a_fit_in_flight(qtbot, tmp_path, toy_folder):
    jobs = tmp_path / "project" / "cache" / "classifier-jobs"

    def leftovers(store):
        # what an app killed mid-fit leaves: a finished job nobody read, and a job that
        # may still run for another window on the same project
        for name, files in (("finished", ("job.json", "outcome.json")),
                            ("running", ("job.json",))):
            (jobs / name).mkdir(parents=True)
            for file in files:
                (jobs / name / file).write_text("{}")

    page, store = _fitting_page(qtbot, tmp_path, toy_folder, prepare=leftovers)
    assert not (jobs / "finished").exists() and (jobs / "running").exists()
    process = page.worker
    qtbot.waitUntil(lambda: page.progress.value() > 0, timeout=60_000)
    page.shutdown()           # what the main window calls on close
    assert process.process.state() == process.process.ProcessState.NotRunning
    assert process.outcome["status"] == "cancelled"
    assert not any(Path(store.models_dir).iterdir())   # no half-written model folder
    store.close()


def test_a_fit_killed_because_it_was_slow_to_stop_counts_as_cancelled(qtbot, tmp_path,
                                                                      toy_folder):
    """On a busy machine a fit may not stop within the window's wait and is killed: the user
    asked for the stop, so the outcome is their cancel, not a failure."""
    page, store = _fitting_page(qtbot, tmp_path, toy_folder)
    process = page.worker
    qtbot.waitUntil(lambda: page.progress.value() > 0, timeout=60_000)
    process.shutdown(wait_ms=0)   # no time to stop cleanly: killed at once
    assert process.process.state() == process.process.ProcessState.NotRunning
    assert process.outcome["status"] == "cancelled", process.outcome
    assert "crashed" in process.outcome["message"]   # what happened is still kept
    assert store.models() == []
    store.close()


@pytest.mark.parametrize("method", ["linear", "partial"])   # in a thread, in a process
def test_a_failing_fit_shows_its_reason(qtbot, tmp_path, toy_folder, method):
    """An error inside the fit reaches the page in words, with the traceback kept."""
    from test_gui_pretrain import make_context, make_project

    from sslstudio.gui.pages.classifier_page import ClassifierPage

    store, truth = make_project(tmp_path, toy_folder)
    run_dir = pretrained_run(store)
    (run_dir / "backbone.safetensors").write_bytes(b"not a safetensors file")
    store.set_labels(truth)
    page = ClassifierPage(make_context(store))
    qtbot.addWidget(page)
    page.set_method(method)
    with qtbot.waitSignal(page.training_finished, timeout=FIT_TIMEOUT_MS) as blocker:
        assert page.train()
    assert blocker.args == [False]
    assert "Training failed" in page.status_label.text()
    assert "damaged or not a safetensors file" in page.last_error, page.last_error
    assert "Traceback" in page.last_error_details
    assert store.models() == []
    store.close()


def test_a_short_pretraining_is_pointed_out(qtbot, tmp_path, toy_folder):
    """Young features classify poorly; the page says so before the user waits for a fit."""
    import json

    from test_gui_pretrain import make_context, make_project

    from sslstudio.gui.pages.classifier_page import ClassifierPage
    from sslstudio.train.downstream.recommend import SHORT_PRETRAINING_STEPS

    store, _ = make_project(tmp_path, toy_folder)
    for name, steps in (("long-run", SHORT_PRETRAINING_STEPS * 3), ("short-run", 289)):
        run_dir = pretrained_run(store, name=name)
        path = run_dir / "backbone.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "pretrain_steps": steps,
                                    "pretext_task": "contrastive"}))
    page = ClassifierPage(make_context(store))
    qtbot.addWidget(page)
    assert Path(page.run_combo.currentData()).name == "short-run"   # the newest first
    assert "Short pretraining" in page.backbone_note.text()
    assert "289 steps" in page.backbone_note.text()
    page.run_combo.setCurrentIndex(page.run_combo.findData(str(store.runs_dir / "long-run")))
    assert page.backbone_note.text() == \
        f"contrastive, {SHORT_PRETRAINING_STEPS * 3:,} pretraining steps, 32 px."
    page.run_combo.setCurrentIndex(page.run_combo.findData(None))
    assert "only the from-scratch baseline" in page.backbone_note.text()
    store.close()


def test_a_fine_tuned_fit_draws_its_validation_curve(qtbot, tmp_path, toy_folder):
    """Partial fine-tuning validates every epoch; the page plots that history when it ends."""
    page, store = _fitting_page(qtbot, tmp_path, toy_folder, method="partial")
    assert page.curve.isHidden()                 # nothing to draw while it trains
    bar: list[tuple[int, int]] = []
    page.worker.progress.connect(lambda *_: bar.append((page.progress.value(),
                                                        page.progress.maximum())))
    with qtbot.waitSignal(page.training_finished, timeout=FIT_TIMEOUT_MS) as blocker:
        pass
    assert blocker.args == [True], page.status_label.text()
    # the progress travelled from the process to the bar while it trained
    assert any(0 < done < total for done, total in bar), bar
    xs, ys = page.curve_item.getData()
    assert not page.curve.isHidden() and len(xs) >= 1
    assert list(xs) == list(range(1, len(xs) + 1))
    assert all(0.0 <= y <= 1.0 for y in ys)
    store.close()


def test_a_fit_finishing_after_the_project_changed_is_kept_by_its_own_project(
        qtbot, tmp_path, toy_folder):
    """Opening another project while a fit runs loses nothing: the model is recorded in the
    project it was trained for, and the new project's page is left alone."""
    from test_gui_pretrain import make_project

    from sslstudio.project import ProjectStore

    page, first = _fitting_page(qtbot, tmp_path / "first", toy_folder, method="linear")
    first_dir = first.project_dir
    second, _ = make_project(tmp_path / "second", toy_folder)
    with qtbot.waitSignal(page.training_finished, timeout=FIT_TIMEOUT_MS) as blocker:
        page.ctx.set_store(second)          # what opening another project does
        assert not page.train_button.isEnabled()   # one fit at a time, even across projects
    assert blocker.args == [True]
    assert f"for the project in {first_dir} finished" in page.status_label.text()
    assert second.models() == [] and page.report == {}
    assert page.train_button.isEnabled()
    with ProjectStore.open(first_dir) as reopened:
        [model] = reopened.models()
    assert (Path(model["path"]) / "model.safetensors").is_file()
    assert model["info"]["method"] == "linear"
    second.close()


def test_a_short_window_scrolls_the_settings_instead_of_squeezing_their_texts(
        qtbot, tmp_path, toy_folder):
    """With the short-pretraining warning on a 1280x800 screen, the method's description and
    the recommendation were squeezed into each other; the column now scrolls."""
    from test_gui_pretrain import make_context, make_project

    from sslstudio.gui.pages.classifier_page import ClassifierPage

    store, truth = make_project(tmp_path, toy_folder)
    pretrained_run(store)
    store.set_labels({r: c for i, (r, c) in enumerate(sorted(truth.items())) if i % 3 == 0})
    page = ClassifierPage(make_context(store))
    qtbot.addWidget(page)
    page.resize(900, 420)
    page.show()
    qtbot.waitExposed(page)
    page.backbone_note.setText("Short pretraining (172 steps): " + "a warning long enough to "
                               "take several lines of the column. " * 3)
    qtbot.wait(50)
    for text in (page.guidance, page.recommendation, page.backbone_note):
        assert text.height() >= text.heightForWidth(text.width()), text.text()[:40]
    store.close()


def test_the_per_class_table_keeps_its_headings_readable_in_a_narrow_window(qtbot, tmp_path,
                                                                            toy_folder):
    from test_gui_pretrain import make_context, make_project

    from sslstudio.gui.pages.classifier_page import ClassifierPage

    store, _ = make_project(tmp_path, toy_folder)
    page = ClassifierPage(make_context(store))
    qtbot.addWidget(page)
    page.resize(800, 500)
    page.show()
    qtbot.waitExposed(page)
    header = page.per_class.horizontalHeader()
    for i in range(4):   # "Precision" was clipped to "ecisi" at 1024 px
        assert header.sectionSize(i) >= header.sectionSizeFromContents(i).width(), i
    store.close()


def test_opening_another_project_shows_its_own_results_not_the_last_fit(
        qtbot, tmp_path, toy_folder):
    """A finished fit's figures, matrix and predictions belong to its project: another
    project shows its own last model (here none), and going back shows the fit again."""
    from test_gui_pretrain import make_project

    from sslstudio.project import ProjectStore

    page, first = _fitting_page(qtbot, tmp_path / "first", toy_folder, method="linear")
    first_dir = first.project_dir
    with qtbot.waitSignal(page.training_finished, timeout=FIT_TIMEOUT_MS) as blocker:
        pass
    assert blocker.args == [True], page.status_label.text()
    fitted = page.figures.text()
    assert "Linear probing" in fitted and page.confusion.total() > 0
    second, _ = make_project(tmp_path / "second", toy_folder)
    page.ctx.set_store(second)
    assert page.figures.text() == "No classifier yet."
    assert page.confusion.total() == 0 and page.per_class.rowCount() == 0
    assert page.predictions == {} and page.predictions_list.count() == 0
    assert page.fit_notes.isHidden() and page.status_label.text() == ""
    reopened = ProjectStore.open(first_dir)   # its model, read back from the project
    page.ctx.set_store(reopened)
    assert page.figures.text() == fitted and page.confusion.total() > 0
    reopened.close()


def test_the_fits_notes_show_beside_its_figures(qtbot, tmp_path, toy_folder):
    """What validation noticed (a class with one label is trained on, not validated) shows
    under the figures, where it is seen without scrolling the settings column."""
    def one_green_label(store):
        greens = sorted(r for r, c in store.labels().items() if c == "green")
        store.set_labels({r: None for r in greens[1:]})

    page, store = _fitting_page(qtbot, tmp_path, toy_folder, method="linear",
                                prepare=one_green_label)
    assert page.fit_notes.isHidden()
    with qtbot.waitSignal(page.training_finished, timeout=FIT_TIMEOUT_MS) as blocker:
        pass
    assert blocker.args == [True], page.status_label.text()
    assert not page.fit_notes.isHidden()
    assert "class 'green' has a single label" in page.fit_notes.text()
    assert "single label" not in page.status_label.text()
    store.close()
