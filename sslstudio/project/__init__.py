"""The project store: image index, classes, labels, runs and models in one SQLite file."""

from sslstudio.project.store import (
    ClassInfo,
    ProjectError,
    ProjectStore,
    SyncSummary,
    UnknownClassError,
    UnknownImageError,
    resolve_project_dir,
)

__all__ = ["ClassInfo", "ProjectError", "ProjectStore", "SyncSummary", "UnknownClassError",
           "UnknownImageError", "resolve_project_dir"]
