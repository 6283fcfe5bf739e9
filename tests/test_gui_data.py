"""Data page and gallery: scan in the background, bad files with reasons, thumbnails."""

from __future__ import annotations

import pytest

import pytestqt  # noqa: F401 - a declared test dependency: missing means failure, not a skip

from PIL import Image  # noqa: E402

from sslstudio.gui.context import AppContext  # noqa: E402
from sslstudio.gui.main_window import MainWindow  # noqa: E402
from sslstudio.gui.widgets.gallery import GalleryModel, GalleryView  # noqa: E402
from sslstudio.gui.widgets.thumbnails import ThumbnailLoader  # noqa: E402


def test_loader_decodes_caches_on_disk_and_reports_broken_files(qtbot, tmp_path):
    root, cache = tmp_path / "images", tmp_path / "thumbs"
    root.mkdir()
    Image.new("RGB", (300, 200), (200, 30, 30)).save(root / "good.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    stats = {p.name: p.stat() for p in root.iterdir()}
    relpaths = ["good.png", "broken.jpg"]
    sizes = [stats[r].st_size for r in relpaths]
    mtimes = [stats[r].st_mtime_ns for r in relpaths]

    loader = ThumbnailLoader(root, cache)
    loader.set_keys(relpaths, sizes, mtimes)
    loader.want(relpaths)
    qtbot.waitUntil(lambda: loader.loaded == 2, timeout=10000)
    pixmap = loader.pixmap("good.png")
    assert pixmap is not None and max(pixmap.width(), pixmap.height()) == 128
    assert "broken.jpg" in loader.broken and loader.broken["broken.jpg"]
    assert loader.cache_file("good.png").is_file()
    loader.shutdown()

    # a fresh loader (empty memory) finds the thumbnail on disk: the source is not read again
    (root / "good.png").unlink()
    again = ThumbnailLoader(root, cache)
    again.set_keys(relpaths, sizes, mtimes)
    again.want(relpaths)
    qtbot.waitUntil(lambda: again.loaded == 2, timeout=10000)
    assert again.pixmap("good.png") is not None
    assert "broken.jpg" in again.broken
    again.shutdown()


def test_a_shut_down_loader_ignores_later_requests(qtbot, tmp_path):
    # a gallery can still repaint (and ask for thumbnails) after its project closed
    root = tmp_path / "images"
    root.mkdir()
    Image.new("RGB", (64, 64), (30, 200, 30)).save(root / "a.png")
    loader = ThumbnailLoader(root, tmp_path / "thumbs")
    loader.shutdown()
    loader.want(["a.png"])
    qtbot.wait(100)              # pytest-qt fails the test on an exception in the event loop
    assert loader.loaded == 0 and loader.pixmap("a.png") is None


def test_gallery_requests_only_visible_thumbnails_of_100k(qtbot, tmp_path):
    loader = ThumbnailLoader(tmp_path, tmp_path / "thumbs", threads=1)
    model = GalleryModel()
    model.set_loader(loader)
    view = GalleryView()
    qtbot.addWidget(view)
    view.setModel(model)
    view.resize(900, 700)
    view.show()
    model.set_relpaths([f"d{i // 1000}/img{i:06d}.png" for i in range(100_000)])
    view.request_visible()
    asked = len(loader._wanted) + len(loader._in_flight)
    assert model.rowCount() == 100_000
    assert 0 < asked < 200
    # the layout runs in batches; once done, the bottom shows the last rows only
    def at_bottom() -> bool:
        view.scrollToBottom()
        return view.visible_rows().stop == 100_000
    qtbot.waitUntil(at_bottom, timeout=15000)
    view.request_visible()
    assert len(view.visible_rows()) < 200
    assert "d99/img099999.png" in loader._wanted + list(loader._in_flight)
    loader.shutdown()


@pytest.fixture
def window(qtbot):
    win = MainWindow(AppContext())
    qtbot.addWidget(win)
    win.show()
    yield win
    win.close()


def test_open_folder_fills_the_gallery_and_lists_bad_files(window, qtbot, toy_folder):
    root, truth = toy_folder
    (root / "red" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg at all")
    assert window.open_path(root)
    page = window.page("Data")
    qtbot.waitUntil(lambda: page.scan_worker is None and page.model.rowCount() == len(truth),
                    timeout=30000)
    assert sorted(page.model.relpaths) == sorted(truth)
    assert page.bad_table.rowCount() == 1
    assert page.bad_table.item(0, 0).text() == "red/broken.jpg"
    assert page.bad_table.item(0, 1).text().strip()          # a reason is given
    assert not page.bad_box.isHidden()
    assert f"{len(truth)} images" in page.summary_label.text()
    # thumbnails of the visible items arrive and land in the project's disk cache
    page.gallery.request_visible()
    first = page.model.relpaths[0]
    qtbot.waitUntil(lambda: page.model.loader.pixmap(first) is not None, timeout=15000)
    assert page.model.loader.cache_file(first).is_file()
    assert str(window.ctx.store.project_dir) in str(page.model.loader.cache_file(first))


def test_labels_show_as_tags_in_the_data_gallery(window, qtbot, toy_folder):
    root, truth = toy_folder
    window.open_path(root)
    page = window.page("Data")
    qtbot.waitUntil(lambda: page.scan_worker is None and page.model.rowCount() > 0,
                    timeout=30000)
    relpath = page.model.relpaths[0]
    window.ctx.store.set_label(relpath, "red")
    window.ctx.notify_labels_changed()
    assert page.model.labels[relpath] == "red"
    assert page.model.colors["red"].startswith("#")
