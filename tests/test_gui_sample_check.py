"""On the built-in sample the Classifier page scores its predictions against the shipped truth."""

from __future__ import annotations

import pytestqt  # noqa: F401 - a declared test dependency: missing means failure, not a skip
from conftest import FIT_TIMEOUT_MS


def test_sample_truth_scores_the_unlabelled_predictions(qtbot, tmp_path, toy_folder):
    from test_gui_classifier import pretrained_run
    from test_gui_pretrain import make_context, make_project

    from sslstudio.data.sample import TRUTH_FILE
    from sslstudio.gui.pages.classifier_page import ClassifierPage

    store, truth = make_project(tmp_path, toy_folder)
    # make the toy folder look like the sample: its true labels in the hidden file
    (store.image_root / TRUTH_FILE).write_text(
        "filename,label\n" + "".join(f"{r},{c}\n" for r, c in sorted(truth.items())))
    pretrained_run(store)
    labelled = {}
    for cls in ("red", "green", "blue"):
        members = sorted(r for r, c in truth.items() if c == cls)
        labelled.update({r: cls for r in members[:4]})
    store.set_labels(labelled)
    page = ClassifierPage(make_context(store))
    qtbot.addWidget(page)
    with qtbot.waitSignal(page.training_finished, timeout=FIT_TIMEOUT_MS) as blocker:
        assert page.train()
    assert blocker.args == [True], page.status_label.text()

    right, total = page.sample_check()
    assert total == len(truth) - len(labelled)  # only images nobody labelled are scored
    expected = sum(truth[r] == p[0] for r, p in page.predictions.items())
    assert right == expected
    assert f"of the {total:,} images you did not label" in page.figures.text()
    # the validated figure comes with where the truth may lie, from the same labels
    low, high = page.report["accuracy_interval"]
    assert low < page.report["accuracy"] <= high
    assert f"(95% interval {low * 100:.0f}–{high:.0%})" in page.figures.text()
    store.close()


def test_other_folders_get_no_sample_check(qtbot, tmp_path, toy_folder):
    from test_gui_classifier import pretrained_run
    from test_gui_pretrain import make_context, make_project

    from sslstudio.gui.pages.classifier_page import ClassifierPage

    store, truth = make_project(tmp_path, toy_folder)
    pretrained_run(store)
    store.set_labels({r: c for i, (r, c) in enumerate(sorted(truth.items())) if i % 2})
    page = ClassifierPage(make_context(store))
    qtbot.addWidget(page)
    page.set_method("linear")  # any method will do; the test above covers the recommended one
    with qtbot.waitSignal(page.training_finished, timeout=FIT_TIMEOUT_MS) as blocker:
        page.train()
    assert blocker.args == [True], page.status_label.text()
    assert page.predictions and page.sample_check() is None
    assert "Sample dataset" not in page.figures.text()
    store.close()
