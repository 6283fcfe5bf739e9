"""Task options on the Pretrain page: one editor per TaskOption, only changes reach the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import pytestqt  # noqa: F401 - a declared test dependency: missing means failure, not a skip
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLineEdit, QSpinBox


@pytest.fixture
def project(tmp_path, toy_folder):
    from test_gui_pretrain import make_project

    store, truth = make_project(tmp_path, toy_folder)
    yield store, truth
    store.close()


@pytest.fixture
def page(qtbot, project):
    from test_gui_pretrain import make_context

    from sslstudio.gui.pages.pretrain_page import PretrainPage

    page = PretrainPage(make_context(project[0]))
    qtbot.addWidget(page)
    return page


def editor(page, name: str):
    return page.task_options.editors[name].widget


def type_into(qtbot, spin, text: str) -> None:
    """Replace a spin box's text by typing, as a user does."""
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin.lineEdit(), text)


def is_bold(page, name: str) -> bool:
    return page.task_options.labels[name].font().bold()


def test_every_task_gets_the_right_editor_for_each_option(page):
    from sslstudio.pretext import TASKS

    for name, task_cls in TASKS.items():
        page.select_task(name)
        assert list(page.task_options.editors) == [o.name for o in task_cls.options()]
        for option in task_cls.options():
            widget = editor(page, option.name)
            expected = (QComboBox if option.choices else
                        {bool: QCheckBox, int: QSpinBox, float: QDoubleSpinBox}.get(
                            type(option.default), QLineEdit))
            assert type(widget) is expected, (name, option.name)
            assert option.help in widget.toolTip()
            assert option.help in page.task_options.labels[option.name].toolTip()
            if isinstance(widget, (QSpinBox, QDoubleSpinBox)):
                if option.minimum is not None:
                    assert widget.minimum() == option.minimum
                if option.maximum is not None:
                    assert widget.maximum() == option.maximum
        # every default shows exactly (no rounding by the spin boxes), so nothing is "changed"
        assert page.current_values()["task_options"] == {}, name
        assert not any(is_bold(page, o.name) for o in task_cls.options())
    assert page.task_options.labels["grayscale_p"].text() == "Grayscale chance"  # from the name
    assert page.task_options.labels["shear"].text() == "Slant (degrees)"        # its own label


def test_degrees_zero_reaches_the_config_and_the_task(qtbot, page):
    from sslstudio.gui.pages.pretrain_page import build_config
    from sslstudio.pretext import create_task

    page.select_task("contrastive")
    type_into(qtbot, editor(page, "degrees"), "0")
    assert is_bold(page, "degrees") and not is_bold(page, "shear")
    assert "1 changed" in page.task_options_section.text()
    values = page.current_values()
    assert values["task_options"] == {"degrees": 0.0}
    config = build_config({**values, "run_dir": "/tmp/unused", "image_root": "/tmp/unused"})
    assert config.task == "contrastive" and config.task_options == {"degrees": 0.0}
    task = create_task(config.task, **config.task_options)
    assert task.degrees == 0.0 and task.shear == 15.0


def test_switching_task_rebuilds_the_editors_and_keeps_options_apart(qtbot, page):
    page.select_task("contrastive")
    type_into(qtbot, editor(page, "degrees"), "0")
    # contrastive_rotation has a `degrees` too: it starts from its own default
    page.select_task("contrastive_rotation")
    assert "rotation_weight" in page.task_options.editors
    assert editor(page, "degrees").value() == 15.0 and not is_bold(page, "degrees")
    assert page.current_values()["task_options"] == {}
    page.select_task("rotation")
    assert list(page.task_options.editors) == ["all_rotations", "hidden"]
    editor(page, "all_rotations").click()
    assert page.current_values()["task_options"] == {"all_rotations": False}
    # back to contrastive: its own edit is still there, rotation's is not sent along
    page.select_task("contrastive")
    assert page.current_values()["task_options"] == {"degrees": 0.0}
    assert editor(page, "degrees").value() == 0.0 and is_bold(page, "degrees")


def test_reset_restores_the_defaults(qtbot, page):
    page.select_task("inpainting")
    mask = editor(page, "mask")
    mask.setCurrentIndex(mask.findData("center"))
    type_into(qtbot, editor(page, "l1_weight"), "0.5")
    assert page.current_values()["task_options"] == {"mask": "center", "l1_weight": 0.5}
    assert is_bold(page, "mask") and is_bold(page, "l1_weight")
    page.task_options.reset_button.click()
    assert page.current_values()["task_options"] == {}
    assert mask.currentData() == "random_blocks" and editor(page, "l1_weight").value() == 0.0
    assert not is_bold(page, "mask") and page.task_options_section.text() == "Task options"


def test_saved_options_come_back_with_their_task_only(qtbot, page, project):
    from test_gui_pretrain import make_context

    from sslstudio.gui.pages.pretrain_page import PretrainPage

    page.select_task("jigsaw")
    editor(page, "normalize_tiles").click()
    type_into(qtbot, editor(page, "permutations"), "24")
    values = page.current_values()
    assert values["task_options"] == {"normalize_tiles": False, "permutations": 24}

    page.select_task("contrastive")
    type_into(qtbot, editor(page, "shear"), "0")
    page._apply_values(values)   # e.g. a project's saved form
    assert page.selected_task() == "jigsaw"
    assert page.current_values()["task_options"] == values["task_options"]
    page.select_task("contrastive")  # the unsaved edit of another task is gone
    assert page.current_values()["task_options"] == {}

    # the form a run saves in the project opens again with the project, through JSON
    store = project[0]
    store.set_setting("pretrain_form", json.loads(json.dumps(values)))
    reopened = PretrainPage(make_context(store))
    qtbot.addWidget(reopened)
    assert reopened.selected_task() == "jigsaw"
    assert reopened.current_values()["task_options"] == values["task_options"]

    # unknown names and unusable values from an older version are ignored, not fatal
    page._apply_values({**values, "task_options": {"permutations": "many", "nope": 1,
                                                   "gap": 0.5}})
    assert page.current_values()["task_options"] == {"gap": 0.5}


def test_a_run_from_the_page_records_the_changed_options(qtbot, page, project):
    from test_gui_pretrain import fast_settings, wait_for_end

    store = project[0]
    fast_settings(page, "contrastive", 1)
    for name in ("degrees", "shear", "stroke_p"):
        type_into(qtbot, editor(page, name), "0")
    assert page.start_run()
    assert wait_for_end(qtbot, page) == "completed", page.last_message
    run_dir = Path(store.runs("pretrain")[-1]["path"])
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["task"] == "contrastive"
    assert saved["task_options"] == {"degrees": 0.0, "shear": 0.0, "stroke_p": 0.0}
    start = next(e for e in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
                 if e.get("kind") == "start")
    assert start["task_options"]["degrees"] == 0.0 and start["task_options"]["blur_p"] == 0.5
    # the run list marks the run, and its tooltip names the options
    assert page.run_table.item(0, 1).text() == "contrastive*"
    assert "degrees=0.0" in page.run_table.item(0, 1).toolTip()


def white_share(strip) -> float:
    return float((strip == 255).all(axis=-1).mean())


def test_the_task_example_is_made_with_the_task_options():
    import numpy as np

    from sslstudio.gui.pages.pretrain_page import render_task_example
    from sslstudio.pretext.inpainting import InpaintingTask

    images = np.random.default_rng(0).integers(0, 250, (4, 64, 64, 3), dtype=np.uint8)
    small, large = (render_task_example(InpaintingTask, images,
                                        {"mask": "center", "mask_fraction": fraction})
                    for fraction in (0.05, 0.6))
    # the mask row is white where hidden: a larger hidden share shows more white
    assert white_share(large) > white_share(small) + 0.1


def test_editing_an_option_redraws_that_task_card(qtbot, page):
    page.select_task("inpainting")
    card = page.cards["inpainting"].example
    qtbot.waitUntil(lambda: page._example_images is not None and card.pixmap() is not None
                    and not card.pixmap().isNull(), timeout=120_000)
    before = white_share(pixmap_array(card.pixmap()))
    rotation_key = page.cards["rotation"].example.pixmap().cacheKey()
    combo = editor(page, "mask")
    combo.setCurrentText("center")
    editor(page, "mask_fraction").setValue(0.8)
    qtbot.waitUntil(lambda: white_share(pixmap_array(card.pixmap())) > before + 0.1,
                    timeout=60_000)
    # a task whose options did not change keeps its picture
    assert page.cards["rotation"].example.pixmap().cacheKey() == rotation_key


def pixmap_array(pixmap):
    import numpy as np

    image = pixmap.toImage().convertToFormat(pixmap.toImage().Format.Format_RGB888)
    width, height = image.width(), image.height()
    data = np.frombuffer(image.constBits(), np.uint8, count=image.bytesPerLine() * height)
    return data.reshape(height, image.bytesPerLine())[:, :width * 3].reshape(height, width, 3)


def page_with_examples(qtbot, tmp_path, root):
    """A Pretrain page on a project of the images in `root`, its cards' examples (and
    problems) computed: (page, store)."""
    from test_gui_pretrain import make_context, make_project

    from sslstudio.gui.pages.pretrain_page import PretrainPage

    store, _ = make_project(tmp_path, (root, {}))
    page = PretrainPage(make_context(store))
    qtbot.addWidget(page)
    page.compute_examples()
    qtbot.waitUntil(lambda: page._example_images is not None, timeout=120_000)
    return page, store


@pytest.mark.parametrize("colour", [False, True])
def test_a_task_that_cannot_learn_from_the_folder_says_so_on_its_card(qtbot, tmp_path, colour):
    """Colorization on grayscale digits would fail at the start of a run; its card says so
    beforehand instead of showing a picture of colours that are not there."""
    import numpy as np
    from PIL import Image

    root = tmp_path / "images"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        pixels = rng.integers(0, 255, (40, 40, 3 if colour else 1), dtype=np.uint8)
        Image.fromarray(pixels if colour else pixels[..., 0]).save(root / f"{i:02d}.png")
    page, store = page_with_examples(qtbot, tmp_path, root)
    card = page.cards["colorization"]
    if colour:
        assert card.problem.isHidden() and not card.example.isHidden()
    else:
        assert not card.problem.isHidden() and card.example.isHidden()
        assert "needs colour images" in card.problem.text()
    assert page.cards["rotation"].problem.isHidden()   # other tasks do not mind
    store.close()


def test_a_folder_of_one_image_is_too_small_for_contrastive_learning_and_its_card_says_so(
        qtbot, tmp_path):
    """The engine refuses contrastive pretraining on a single image (nothing to tell it
    apart from); the card says so before the user presses Start."""
    import numpy as np
    from PIL import Image

    root = tmp_path / "images"
    root.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)) \
        .save(root / "only.png")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")   # listed, but never readable
    page, store = page_with_examples(qtbot, tmp_path, root)
    card = page.cards["contrastive"]
    assert not card.problem.isHidden()
    assert "needs at least 2 readable images" in card.problem.text()
    assert "has 1 image" in card.problem.text()
    assert page.cards["rotation"].problem.isHidden()
    store.close()
