"""Where SSL Studio keeps per-user things (projects, the sample dataset, settings)."""

from __future__ import annotations

import os
from pathlib import Path


def user_data_dir() -> Path:
    """Per-user data folder; SSLSTUDIO_HOME overrides it (tests, portable installs)."""
    override = os.environ.get("SSLSTUDIO_HOME")
    if override:
        return Path(override).expanduser()
    from platformdirs import user_data_path

    return Path(user_data_path("sslstudio", appauthor=False))


def default_projects_dir() -> Path:
    return user_data_dir() / "projects"


def sample_images_dir() -> Path:
    """Where the generated sample dataset's images live (outside any project)."""
    return user_data_dir() / "sample-images"


def sample_project_dir() -> Path:
    return default_projects_dir() / "sample"
