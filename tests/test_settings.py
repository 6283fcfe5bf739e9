"""Per-user settings: where they live, that they survive a restart, and that reset clears them."""

from __future__ import annotations

from pathlib import Path

import pytest

import pytestqt  # noqa: E402,F401 - a declared test dependency: missing means failure

from PySide6.QtWidgets import QMessageBox  # noqa: E402

from sslstudio import paths  # noqa: E402
from sslstudio.gui import settings as settings_mod  # noqa: E402
from sslstudio.gui.main_window import MainWindow  # noqa: E402
from sslstudio.gui.settings import AppSettings, reset_settings, settings_file  # noqa: E402
from sslstudio.project import ProjectStore  # noqa: E402


def _project(tmp_path: Path, toy_folder) -> Path:
    root, _ = toy_folder
    ProjectStore.create(tmp_path / "proj", root, name="toy").close()
    return tmp_path / "proj"


def test_settings_file_is_in_the_platform_config_folder(tmp_path, monkeypatch, qapp):
    monkeypatch.delenv("SSLSTUDIO_HOME", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert settings_file() == tmp_path / "config" / "sslstudio" / "settings.ini"
    s = AppSettings()
    s.set_value("probe", 42)
    assert (tmp_path / "config" / "sslstudio" / "settings.ini").is_file()
    assert "probe" in (tmp_path / "config" / "sslstudio" / "settings.ini").read_text()


def test_legacy_settings_in_the_data_folder_are_adopted(tmp_path, monkeypatch, qapp):
    monkeypatch.delenv("SSLSTUDIO_HOME", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    legacy = paths.user_data_dir() / "settings.ini"
    assert legacy.is_relative_to(tmp_path / "data")
    AppSettings(legacy).set_value("old", "kept")
    assert str(AppSettings().value("old")) == "kept"


def test_sslstudio_home_isolates_the_settings(tmp_path, qapp):
    # conftest points SSLSTUDIO_HOME into tmp_path
    assert settings_file() == paths.user_data_dir() / "settings.ini"
    assert settings_file().is_relative_to(tmp_path)


def test_a_setting_survives_a_restart_and_reset_clears_it(tmp_path, toy_folder, qtbot, monkeypatch):
    project = _project(tmp_path, toy_folder)

    first = MainWindow()
    qtbot.addWidget(first)
    first.show()
    assert first.open_path(project)
    first.close()  # stores the geometry; opening stored the recent project
    stored_geometry = AppSettings().window_geometry()
    assert stored_geometry is not None and stored_geometry.size() > 0

    # "restart": a brand-new window with a brand-new settings object reads the file again
    second = MainWindow()
    qtbot.addWidget(second)
    second.show()
    assert second.ctx.settings is not first.ctx.settings
    assert [p.resolve() for p in second.ctx.settings.recent_projects()] == [project.resolve()]
    assert second.ctx.settings.window_geometry() == stored_geometry
    second.open_path(project)  # the start screen lists the project as recent
    second.show_start_screen()

    # the menu action asks first; cancelling keeps everything
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *a, **k: QMessageBox.StandardButton.Cancel)
    second.reset_settings_action.trigger()
    assert second.ctx.settings.recent_projects()
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *a, **k: QMessageBox.StandardButton.Reset)
    second.reset_settings_action.trigger()
    assert second.ctx.settings.recent_projects() == []
    assert second.ctx.settings.window_geometry() is None
    assert "recent_projects" not in settings_file().read_text()
    second.close()
    assert project.is_dir() and (project / "project.sqlite").is_file()  # projects untouched

    third = MainWindow()
    qtbot.addWidget(third)
    third.show()
    assert third.ctx.settings.recent_projects() == []
    third.close()


def test_reset_settings_function_clears_the_file(tmp_path, qapp):
    s = AppSettings()
    s.add_recent_project(tmp_path)
    s.set_value("window/geometry", b"x")
    assert s.keys()
    cleared = reset_settings()
    assert cleared == settings_file()
    assert AppSettings().keys() == []
    assert settings_mod.MAX_RECENT == 10
