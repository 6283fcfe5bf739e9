"""App settings (recent projects, window geometry) in a per-user INI file.

Where the file lives (``settings_file()``):

* with ``SSLSTUDIO_HOME`` set: ``$SSLSTUDIO_HOME/settings.ini``, so tests and
  portable installs are isolated completely;
* otherwise the platform's per-user configuration folder as Qt names it
  (``QStandardPaths.GenericConfigLocation``) + ``sslstudio/settings.ini``:
  ``~/.config/sslstudio/settings.ini`` on Linux (``$XDG_CONFIG_HOME`` honoured),
  ``~/Library/Preferences/sslstudio/settings.ini`` on macOS,
  ``%LOCALAPPDATA%\\sslstudio\\settings.ini`` on Windows.

An INI file rather than the registry / plist keeps the format the same everywhere
and lets a user read, copy or delete it. ``reset_settings()`` (Help → Reset
Settings… in the app) forgets everything; projects on disk are never touched.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, QStandardPaths

from sslstudio import paths

MAX_RECENT = 10
FILE_NAME = "settings.ini"


def settings_file() -> Path:
    """The settings file for this user (see the module docstring)."""
    if os.environ.get("SSLSTUDIO_HOME"):
        return paths.user_data_dir() / FILE_NAME
    config = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.GenericConfigLocation)
    if not config:  # no home folder at all: fall back next to the data
        return paths.user_data_dir() / FILE_NAME
    return Path(config) / "sslstudio" / FILE_NAME


def _adopt_legacy_file(file: Path) -> None:
    """Versions before 0.1.0's packaging kept settings in the data folder; move them once."""
    legacy = paths.user_data_dir() / FILE_NAME
    if file.exists() or legacy == file or not legacy.is_file():
        return
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(legacy, file)
    except OSError:
        pass  # starting with empty settings is fine


def reset_settings(file: Path | None = None) -> Path:
    """Forget every setting (recent projects, window state); returns the file that was cleared."""
    settings = AppSettings(file)
    settings.reset()
    return settings.file


class AppSettings:
    def __init__(self, file: Path | None = None) -> None:
        if file is None:
            file = settings_file()
            _adopt_legacy_file(file)
        file.parent.mkdir(parents=True, exist_ok=True)
        self.file = Path(file)
        self._qs = QSettings(str(file), QSettings.Format.IniFormat)

    def reset(self) -> None:
        """Remove every key, on disk too."""
        self._qs.clear()
        self._qs.sync()

    def keys(self) -> list[str]:
        return list(self._qs.allKeys())

    # ------------------------------------------------------------------ recent projects
    def recent_projects(self, existing_only: bool = True) -> list[Path]:
        value = self._qs.value("recent_projects", [])
        if isinstance(value, str):  # QSettings returns a bare string for one-item lists
            value = [value]
        found = [Path(v) for v in (value or [])]
        if existing_only:
            found = [p for p in found if (p / "project.sqlite").is_file()]
        return found

    def add_recent_project(self, project_dir: Path) -> None:
        project_dir = Path(project_dir).absolute()
        recent = [p for p in self.recent_projects(existing_only=False) if p != project_dir]
        recent.insert(0, project_dir)
        self._qs.setValue("recent_projects", [str(p) for p in recent[:MAX_RECENT]])
        self._qs.sync()

    def remove_recent_project(self, project_dir: Path) -> None:
        recent = [p for p in self.recent_projects(existing_only=False) if p != Path(project_dir)]
        self._qs.setValue("recent_projects", [str(p) for p in recent])
        self._qs.sync()

    # ------------------------------------------------------------------ window state
    def window_geometry(self) -> QByteArray | None:
        value = self._qs.value("window/geometry")
        return value if isinstance(value, QByteArray) else None

    def set_window_geometry(self, data: QByteArray) -> None:
        self._qs.setValue("window/geometry", data)
        self._qs.sync()

    def value(self, key: str, default=None):
        return self._qs.value(key, default)

    def set_value(self, key: str, value) -> None:
        self._qs.setValue(key, value)
        self._qs.sync()
