"""The Label page with real key presses, checked against the store on disk; and suggest.py."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import pytestqt  # noqa: F401 - a declared test dependency: missing means failure, not a skip

from PySide6.QtCore import QItemSelectionModel, Qt  # noqa: E402

from sslstudio.gui.context import AppContext  # noqa: E402
from sslstudio.gui.pages.label_page import LabelPage, letter_shortcuts  # noqa: E402
from sslstudio.project import ProjectStore  # noqa: E402
from sslstudio.project.suggest import (  # noqa: E402
    k_center_greedy,
    least_confident,
    spread_sample,
    suggest_next,
)


def index_folder(store: ProjectStore) -> None:
    """Fill the store's index (the real scanner when it is there)."""
    try:
        from sslstudio.data.scan import scan_folder
        scan = scan_folder(store.image_root)
    except ImportError:
        from sslstudio.project.store import ImageEntry
        images = [ImageEntry(p.relative_to(store.image_root).as_posix(), p.stat().st_size,
                             p.stat().st_mtime_ns)
                  for p in sorted(store.image_root.rglob("*.png"))]
        scan = SimpleNamespace(root=store.image_root, images=images, bad=[])
    store.sync_index(scan)


@pytest.fixture
def page(qtbot, toy_folder, tmp_path):
    root, _ = toy_folder
    store = ProjectStore.create(tmp_path / "project", root)
    index_folder(store)
    for name in ("red", "green", "blue"):
        store.add_class(name)
    ctx = AppContext()
    ctx.set_store(store)
    widget = LabelPage(ctx)
    qtbot.addWidget(widget)
    widget.resize(1200, 800)
    widget.show()
    yield widget
    ctx.shutdown()


def select_rows(page: LabelPage, rows: list[int]) -> list[str]:
    view, model = page.gallery, page.model
    view.clearSelection()
    for row in rows:
        view.selectionModel().select(model.index(row), QItemSelectionModel.SelectionFlag.Select)
    view.selectionModel().setCurrentIndex(model.index(rows[-1]),
                                          QItemSelectionModel.SelectionFlag.NoUpdate)
    view.setFocus()
    return [model.relpaths[r] for r in rows]


def on_disk(page: LabelPage) -> dict[str, str]:
    with ProjectStore.open(page.store.project_dir) as fresh:
        return fresh.labels()


def test_keys_label_the_selection_and_undo_redo_persist(page, qtbot):
    assert page.model.rowCount() == 24
    chosen = select_rows(page, [0, 1, 2])
    qtbot.keyClick(page.gallery, Qt.Key.Key_1)
    assert on_disk(page) == dict.fromkeys(chosen, "red")
    assert page.model.labels[chosen[0]] == "red"
    assert "(3)" in page.class_list.item(0).text()     # the per-class count is shown

    qtbot.keyClick(page.gallery, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert on_disk(page) == {}
    assert chosen[0] not in page.model.labels
    page.undo_stack.redo()
    assert on_disk(page) == dict.fromkeys(chosen, "red")

    # letters: "g" is green (only class starting with g); 0 clears
    one = select_rows(page, [5])
    qtbot.keyClick(page.gallery, "g")
    assert on_disk(page)[one[0]] == "green"
    select_rows(page, [5])
    qtbot.keyClick(page.gallery, Qt.Key.Key_0)
    assert one[0] not in on_disk(page)
    # a key with no class behind it changes nothing
    select_rows(page, [6])
    qtbot.keyClick(page.gallery, Qt.Key.Key_7)
    assert len(on_disk(page)) == 3


def test_classes_named_by_digits_take_the_key_of_their_name(page, qtbot):
    """Handwritten digits: with classes 0-9, key 7 must mean "7", not the eighth class."""
    for name in ("red", "green", "blue"):
        page.delete_class(name, confirm=False)
    for digit in "0123456789":
        page.add_class(digit)
    assert "0–9" in page.hint.text()
    keys_shown = {page.class_list.item(i).data(Qt.ItemDataRole.UserRole):
                  page.class_list.item(i).text().split()[0] for i in range(10)}
    assert keys_shown == {d: d for d in "0123456789"}
    chosen = select_rows(page, [0, 1])
    qtbot.keyClick(page.gallery, Qt.Key.Key_7)
    assert on_disk(page) == dict.fromkeys(chosen, "7")
    select_rows(page, [0, 1])
    qtbot.keyClick(page.gallery, Qt.Key.Key_0)          # 0 is a class here, not "clear"
    assert on_disk(page) == dict.fromkeys(chosen, "0")
    select_rows(page, [0, 1])
    qtbot.keyClick(page.gallery, Qt.Key.Key_Backspace)
    assert on_disk(page) == {}
    # one class with another name: back to keys by position
    page.add_class("other")
    assert "1–9" in page.hint.text()
    select_rows(page, [2])
    qtbot.keyClick(page.gallery, Qt.Key.Key_1)
    assert list(on_disk(page).values()) == [page.class_names()[0]]


def test_single_label_advances_to_the_next_image(page, qtbot):
    select_rows(page, [0])
    qtbot.keyClick(page.gallery, Qt.Key.Key_2)
    assert page.gallery.currentIndex().row() == 1


def test_rename_merge_delete_and_undo_of_delete(page, qtbot):
    chosen = select_rows(page, [0, 1])
    page.assign_class("red")
    other = select_rows(page, [10])
    page.assign_class("green")

    assert page.rename_class("red", "circle")
    assert set(on_disk(page).values()) == {"circle", "green"}
    assert page.class_names()[0] == "circle"

    assert page.merge_class("green", "circle")
    disk = on_disk(page)
    assert disk[other[0]] == "circle" and "green" not in page.store.class_names()
    page.undo_stack.undo()   # merge undone: green and its label are back
    assert on_disk(page)[other[0]] == "green"
    assert "green" in page.store.class_names()

    assert page.delete_class("circle", confirm=False)
    assert all(r not in on_disk(page) for r in chosen)
    assert "circle" not in page.store.class_names()
    page.undo_stack.undo()
    assert on_disk(page)[chosen[0]] == "circle"
    assert page.store.class_names()[0] == "circle"   # back in its place


def test_filters_and_suggestions(page, qtbot):
    select_rows(page, [0, 1, 2, 3])
    page.assign_class("blue")
    assert page.set_filter("unlabelled")
    assert page.model.rowCount() == 20
    assert page.set_filter("class", "blue")
    assert page.model.rowCount() == 4
    picked = page.suggest_next()
    assert len(picked) == 20 and not set(picked) & set(page.labels)   # all unlabelled
    assert page.model.relpaths == picked
    # predictions arrive: least-confident filter and suggestions use them
    predictions = {r: ("red", 0.5 + i / 100) for i, r in enumerate(page.all_relpaths)}
    page.ctx.predictions = predictions
    assert page.set_filter("least_confident")
    assert page.model.relpaths[0] == page.all_relpaths[4]   # first unlabelled, lowest conf
    assert page.suggest_next()[0] == page.all_relpaths[4]


def test_thumbnails_load_in_the_label_gallery(page, qtbot):
    loader = page.model.loader
    page.gallery.request_visible()
    qtbot.waitUntil(lambda: page.model.loader.pixmap(page.model.relpaths[0]) is not None,
                    timeout=10000)
    assert loader.loaded > 0


# ---------------------------------------------------------------------------- suggest.py
def test_letter_shortcuts_only_for_unambiguous_letters():
    assert letter_shortcuts(["cat", "car", "dog"]) == {"d": "dog"}


def test_spread_sample_covers_every_slice():
    relpaths = [f"{folder}/{i:03d}.png" for folder in "abcd" for i in range(50)]
    picked = spread_sample(relpaths, 4, seed=1)
    assert sorted(p[0] for p in picked) == ["a", "b", "c", "d"]


def test_k_center_picks_one_point_per_cluster():
    rng = np.random.default_rng(0)
    centers = np.eye(5, 16) * 10
    points = np.concatenate([c + rng.normal(0, 0.1, size=(40, 16)) for c in centers])
    cluster = np.repeat(np.arange(5), 40)
    picked = k_center_greedy(points, 5, seed=3)
    assert sorted(cluster[picked]) == [0, 1, 2, 3, 4]
    # clusters already labelled are not picked again
    picked = k_center_greedy(points, 3, centers=[0, 40], seed=3)
    assert sorted(cluster[picked]) == [2, 3, 4]


def test_suggest_next_prefers_predictions_then_embeddings():
    relpaths = [f"{i}.png" for i in range(10)]
    labels = {"0.png": "a"}
    preds = {r: ("a", 1.0 - i / 10) for i, r in enumerate(relpaths)}
    picked, strategy = suggest_next(relpaths, labels, 3, predictions=preds)
    assert strategy == "least_confident" and picked == ["9.png", "8.png", "7.png"]
    assert least_confident(preds, 1) == ["9.png"]
    emb = {r: np.array([float(i), 1.0]) for i, r in enumerate(relpaths)}
    picked, strategy = suggest_next(relpaths, labels, 2, embeddings=emb)
    assert strategy == "representative" and len(picked) == 2 and "0.png" not in picked
    picked, strategy = suggest_next(relpaths, labels, 2)
    assert strategy == "spread" and len(picked) == 2


def test_suggestions_use_the_newest_backbone_without_a_map(qtbot, tmp_path, toy_folder,
                                                        monkeypatch):
    """Nobody has to visit the Inspect page first: with a pretrained backbone, "What to label
    next?" computes its features itself, and each round goes to images not yet labelled."""
    from test_gui_classifier import pretrained_run
    from test_gui_pretrain import make_context, make_project

    import sslstudio.gui.pages.label_page as label_page

    monkeypatch.setattr(label_page, "SUGGEST_COUNT", 5)
    store, truth = make_project(tmp_path, toy_folder)
    store.add_class("red")
    pretrained_run(store)
    ctx = make_context(store)
    widget = LabelPage(ctx)
    qtbot.addWidget(widget)
    widget.show()
    assert widget.suggest_next() == []                    # features first, in the background
    assert not widget.suggest_button.isEnabled()
    qtbot.waitUntil(lambda: bool(widget.suggestions), timeout=60_000)
    assert widget.suggest_button.isEnabled()
    assert sorted(ctx.embeddings) == sorted(truth)
    first = list(widget.suggestions)
    assert len(set(first)) == 5 and widget.model.relpaths == first
    select_rows(widget, list(range(5)))
    widget.assign_class("red")
    assert {r: store.labels().get(r) for r in first} == {r: "red" for r in first}
    second = widget.suggest_next()                       # the features are there now: at once
    assert len(set(second)) == 5 and not set(second) & set(first)
    ctx.shutdown()
    store.close()


def test_suggestions_for_a_big_project_are_chosen_in_the_background(qtbot, tmp_path, toy_folder,
                                                                      monkeypatch):
    """Above SUGGEST_IN_BACKGROUND_ABOVE images the k-means runs in a worker (seconds on
    100,000 images), the button waits for it, and a label given meanwhile is not suggested."""
    from test_gui_classifier import pretrained_run
    from test_gui_pretrain import make_context, make_project

    import sslstudio.gui.pages.label_page as label_page

    monkeypatch.setattr(label_page, "SUGGEST_COUNT", 5)
    monkeypatch.setattr(label_page, "SUGGEST_IN_BACKGROUND_ABOVE", 0)   # the toy set counts as big
    store, truth = make_project(tmp_path, toy_folder)
    store.add_class("red")
    run = pretrained_run(store)
    ctx = make_context(store)
    rng = np.random.default_rng(0)
    ctx.set_embeddings({r: rng.normal(size=8) for r in truth}, run)     # an up-to-date map
    widget = LabelPage(ctx)
    qtbot.addWidget(widget)
    widget.show()
    assert widget.suggest_next() == []                   # chosen in a worker
    assert not widget.suggest_button.isEnabled() and widget.suggest_worker is not None
    qtbot.waitUntil(lambda: bool(widget.suggestions), timeout=60_000)
    assert widget.suggest_button.isEnabled() and widget.suggest_worker is None
    first = list(widget.suggestions)
    assert len(set(first)) == 5 and set(first) <= set(truth)
    select_rows(widget, list(range(5)))
    widget.assign_class("red")
    assert widget.suggest_next() == []
    qtbot.waitUntil(lambda: widget.suggest_worker is None, timeout=60_000)
    assert len(widget.suggestions) == 5 and not set(widget.suggestions) & set(first)
    ctx.shutdown()
    store.close()


def test_a_failed_background_choice_falls_back_to_a_spread_sample_with_the_reason(
        qtbot, tmp_path, toy_folder, monkeypatch):
    from test_gui_classifier import pretrained_run
    from test_gui_pretrain import make_context, make_project

    import sslstudio.gui.pages.label_page as label_page
    import sslstudio.project.suggest as suggest

    original = suggest.suggest_next

    def k_means_breaks(relpaths, labels, k=24, *, embeddings=None, **kwargs):
        if embeddings:
            raise MemoryError("out of memory in k-means")
        return original(relpaths, labels, k, embeddings=embeddings, **kwargs)

    monkeypatch.setattr(suggest, "suggest_next", k_means_breaks)
    monkeypatch.setattr(label_page, "SUGGEST_COUNT", 5)
    monkeypatch.setattr(label_page, "SUGGEST_IN_BACKGROUND_ABOVE", 0)
    store, truth = make_project(tmp_path, toy_folder)
    run = pretrained_run(store)
    ctx = make_context(store)
    ctx.set_embeddings({r: np.full(8, float(i)) for i, r in enumerate(truth)}, run)
    messages = []
    ctx.status_message.connect(messages.append)
    widget = LabelPage(ctx)
    qtbot.addWidget(widget)
    assert widget.suggest_next() == []
    qtbot.waitUntil(lambda: widget.suggest_worker is None, timeout=60_000)
    assert widget.suggest_button.isEnabled()
    assert len(widget.suggestions) == 5 and set(widget.suggestions) <= set(truth)
    assert "out of memory in k-means" in messages[-1] and "spread-out sample" in messages[-1]
    ctx.shutdown()
    store.close()


def test_suggestions_move_to_a_newer_backbone_than_the_map(qtbot, tmp_path, toy_folder):
    """A map drawn with an older backbone is not used once a newer one is trained: the next
    press computes the newer backbone's features, and the press after that reuses them."""
    from test_gui_classifier import pretrained_run
    from test_gui_pretrain import make_context, make_project

    store, truth = make_project(tmp_path, toy_folder)
    old_run = pretrained_run(store, name="old-run")
    ctx = make_context(store)
    ctx.set_embeddings({r: np.full(3, float(i)) for i, r in enumerate(truth)}, old_run)
    new_run = pretrained_run(store, name="new-run", seed=1)
    widget = LabelPage(ctx)
    qtbot.addWidget(widget)
    assert widget.suggest_next() == []                   # the old map is stale: recompute
    qtbot.waitUntil(lambda: bool(widget.suggestions), timeout=60_000)
    assert ctx.embeddings_source == str(new_run)
    some = next(iter(truth))
    assert ctx.embeddings[some].shape != (3,)            # the new backbone's features
    assert widget.suggest_next()                         # up to date now: suggestions at once
    ctx.set_embeddings(ctx.embeddings, old_run)          # e.g. the Inspect page drew the old map
    assert widget.suggest_next() == []
    qtbot.waitUntil(lambda: ctx.embeddings_source == str(new_run), timeout=60_000)
    ctx.shutdown()
    store.close()


def test_a_broken_backbone_still_gives_suggestions_and_says_why(qtbot, tmp_path, toy_folder):
    from test_gui_classifier import pretrained_run
    from test_gui_pretrain import make_context, make_project

    store, truth = make_project(tmp_path, toy_folder)
    run_dir = pretrained_run(store)
    for weights in Path(run_dir).glob("backbone*.safetensors"):
        weights.write_bytes(b"not a safetensors file")
    ctx = make_context(store)
    messages = []
    ctx.status_message.connect(messages.append)
    widget = LabelPage(ctx)
    qtbot.addWidget(widget)
    assert widget.suggest_next() == []
    qtbot.waitUntil(lambda: bool(widget.suggestions), timeout=60_000)
    assert widget.suggest_button.isEnabled()
    assert any("Could not compute features" in m for m in messages)
    assert set(widget.suggestions) <= set(truth) and widget.model.relpaths == widget.suggestions
    ctx.shutdown()
    store.close()
