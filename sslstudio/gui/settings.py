"""App settings (recent projects, window geometry) in an INI file in the user data dir.

Keeping the file under ``paths.user_data_dir()`` (not the platform registry)
means SSLSTUDIO_HOME isolates tests and portable installs completely.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

from sslstudio import paths

MAX_RECENT = 10


class AppSettings:
    def __init__(self, file: Path | None = None) -> None:
        file = file or paths.user_data_dir() / "settings.ini"
        file.parent.mkdir(parents=True, exist_ok=True)
        self._qs = QSettings(str(file), QSettings.Format.IniFormat)

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
