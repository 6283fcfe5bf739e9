"""Inspect page and its widgets: previews, embedding map, neighbours, select-and-label."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import pytestqt  # noqa: F401 - a declared test dependency: missing means failure, not a skip


def clustered_features(per_cluster: int = 20, dim: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 10, size=(3, dim))
    feats = np.concatenate([c + rng.normal(0, 0.5, size=(per_cluster, dim)) for c in centres])
    names = [f"c{k}/img{i}.png" for k in range(3) for i in range(per_cluster)]
    return names, feats.astype(np.float32)


def test_labelled_points_are_drawn_over_the_faint_unlabelled_crowd(qtbot):
    from PySide6.QtGui import QColor

    from sslstudio.gui.widgets.embedding_map import UNLABELLED_COLOR, EmbeddingMap
    from sslstudio.project.schema import palette_color

    names, feats = clustered_features()
    view = EmbeddingMap()
    qtbot.addWidget(view)
    view.set_data(names, feats)
    labelled = {names[3]: "c0", names[25]: "c1", names[50]: "c2"}
    view.set_categories(labelled, {f"c{k}": palette_color(k) for k in range(3)})
    drawn = view.scatter.data
    # the labelled images come last (on top), and clicks still find the right image
    assert [names[int(i)] for i in drawn["data"][-3:]] == [names[3], names[25], names[50]]
    assert len(drawn) == len(names)
    alphas = {names[int(i)]: b.color().alpha() for i, b in zip(drawn["data"], drawn["brush"])}
    assert max(a for r, a in alphas.items() if r not in labelled) \
        < min(alphas[r] for r in labelled)
    # and no default class colour is a grey that could pass for an unlabelled point
    grey = QColor(UNLABELLED_COLOR)
    for k in range(30):
        colour = QColor(palette_color(k))
        assert colour.hsvSaturationF() > 0.25 or abs(colour.valueF() - grey.valueF()) > 0.4, k


def test_map_neighbours_and_box_selection_find_the_cluster(qtbot):
    from sslstudio.gui.widgets.embedding_map import EmbeddingMap

    names, feats = clustered_features()
    view = EmbeddingMap()
    qtbot.addWidget(view)
    view.resize(500, 400)
    view.show()
    view.set_data(names, feats)
    # the 2-D projection keeps the three clusters apart
    centres = [view.coords[i * 20:(i + 1) * 20].mean(0) for i in range(3)]
    spread = max(np.linalg.norm(view.coords[i * 20:(i + 1) * 20] - centres[i], axis=1).max()
                 for i in range(3))
    assert min(np.linalg.norm(centres[a] - centres[b]) for a, b in ((0, 1), (0, 2), (1, 2))) \
        > 2 * spread

    with qtbot.waitSignal(view.neighbours_found) as blocker:
        found = view.show_neighbours("c1/img3.png", k=5)
    assert blocker.args[0] == "c1/img3.png"
    assert [r.split("/")[0] for r, _ in found] == ["c1"] * 5

    # a box drawn around cluster 2 selects exactly its 20 points
    pts = view.coords[40:60]
    lo, hi = pts.min(0) - 0.1, pts.max(0) + 0.1
    box = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]])
    with qtbot.waitSignal(view.selection_changed) as blocker:
        view._select_shape(box)
    assert sorted(blocker.args[0]) == sorted(names[40:60])


def test_lasso_polygon_is_even_odd():
    from sslstudio.gui.widgets.embedding_map import points_in_polygon

    square = np.array([[0, 0], [4, 0], [4, 4], [0, 4]], float)
    points = np.array([[1, 1], [5, 5], [3.9, 0.1], [-0.1, 2]], float)
    assert points_in_polygon(points, square).tolist() == [True, False, True, False]


def test_preview_grid_browses_earlier_steps(qtbot):
    from sslstudio.gui.widgets.preview_grid import PreviewGrid, PreviewSet

    grid = PreviewGrid()
    qtbot.addWidget(grid)
    for step in (10, 20, 30):
        image = np.full((8, 12, 3), step, np.uint8)
        grid.add_set(PreviewSet(step, [("input", image), ("output", image)]))
    assert grid.current_step() == 30 and grid.shown_count() == 2
    grid.slider.setValue(0)
    assert grid.current_step() == 10
    assert "Step 10" in grid.step_label.text()


def test_embedding_map_of_the_project_and_label_a_cluster(qtbot, tmp_path, toy_folder):
    from test_gui_classifier import pretrained_run
    from test_gui_pretrain import make_context, make_project

    from sslstudio.gui.pages.inspect_page import InspectPage

    store, truth = make_project(tmp_path, toy_folder)
    pretrained_run(store)
    ctx = make_context(store)
    page = InspectPage(ctx)
    qtbot.addWidget(page)
    page.resize(1000, 700)
    page.show()
    assert page.run_combo.count() == 1
    with qtbot.waitSignal(page.embedding_ready, timeout=60_000) as blocker:
        assert page.compute_map()
    assert blocker.args == [len(truth)]
    assert sorted(page.map.relpaths) == sorted(truth)
    if hasattr(ctx, "embeddings"):
        assert len(ctx.embeddings) == len(truth)
    # neighbours of an image are listed with thumbnails
    page.map.show_neighbours(sorted(truth)[0])
    assert page.neighbours.count() == 9
    # select five points and label them in one step
    chosen = [page.map.relpaths.index(r) for r in sorted(truth)[:5]]
    page.map.select_indices(chosen)
    page.label_combo.setCurrentText("red")
    assert page.label_selection() == 5
    assert {r: store.labels().get(r) for r in sorted(truth)[:5]} == \
        {r: "red" for r in sorted(truth)[:5]}
    # a reopened project shows the same map at once, from the features kept in the run
    first = np.array(page.map.features)
    again = InspectPage(make_context(store))
    qtbot.addWidget(again)
    qtbot.waitUntil(lambda: sorted(again.map.relpaths) == sorted(truth), timeout=10_000)
    assert again.map.relpaths == page.map.relpaths
    assert np.allclose(again.map.features, first, rtol=1e-2, atol=1e-2)
    # new images make the saved map stale: it is not shown for the changed folder
    from PIL import Image

    from sslstudio.data.scan import scan_folder
    from sslstudio.gui.pages.inspect_page import load_embedding_cache

    root = Path(store.image_root)
    Image.new("RGB", (32, 32), (9, 9, 9)).save(root / "newcomer.png")
    store.sync_index(scan_folder(root))
    assert load_embedding_cache(page.run_combo.currentData(), store) is None
    store.close()


def test_previews_fit_the_panel_width_and_refit_on_resize(qtbot):
    import numpy as np

    from sslstudio.gui.widgets.preview_grid import PreviewGrid, PreviewSet

    grid = PreviewGrid()
    qtbot.addWidget(grid)
    grid.resize(420, 600)
    grid.show()
    qtbot.waitExposed(grid)
    wide = np.zeros((300, 1200, 3), np.uint8)
    grid.add_set(PreviewSet(5, [("wide preview", wide)]))
    qtbot.waitUntil(lambda: grid.shown_count() == 1, timeout=2000)
    assert grid._pixmaps[0].width() <= grid._scroll.viewport().width()
    grid.resize(900, 600)
    qtbot.waitUntil(lambda: grid._pixmaps and grid._pixmaps[0].width() > 500, timeout=2000)
    assert grid._pixmaps[0].width() <= grid._scroll.viewport().width()


def test_map_features_average_each_image_with_its_mirror_and_old_caches_are_recomputed(
        tmp_path, toy_folder):
    from PIL import Image
    from test_gui_classifier import pretrained_run
    from test_gui_pretrain import make_project

    from sslstudio.data.scan import scan_folder
    from sslstudio.gui.pages.inspect_page import (EMBEDDING_CACHE, compute_embeddings,
                                                  load_embedding_cache)

    store, truth = make_project(tmp_path, toy_folder)
    root = Path(store.image_root)
    original = sorted(truth)[0]
    Image.open(root / original).transpose(Image.FLIP_LEFT_RIGHT).save(root / "mirrored.png")
    store.sync_index(scan_folder(root))
    run_dir = pretrained_run(store)
    relpaths, features = compute_embeddings(run_dir, store)
    row = {r: i for i, r in enumerate(relpaths)}
    # an image and its mirror image get the same features (the Label page's suggestions
    # measured better on mirror-averaged ones); a different image does not
    np.testing.assert_allclose(features[row["mirrored.png"]], features[row[original]],
                               rtol=1e-4, atol=1e-5)
    other = sorted(truth)[-1]
    assert not np.allclose(features[row[other]], features[row[original]], atol=1e-3)
    assert load_embedding_cache(run_dir, store) is not None
    # a cache from before (its rows one view each, no 'views' entry) is not used
    with np.load(run_dir / EMBEDDING_CACHE) as data:
        kept = {k: data[k] for k in data.files if k != "views"}
    with open(run_dir / EMBEDDING_CACHE, "wb") as handle:
        np.savez(handle, **kept)
    assert load_embedding_cache(run_dir, store) is None
    store.close()
