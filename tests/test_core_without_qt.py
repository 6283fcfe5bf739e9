"""The core runs without Qt: every module outside the GUI imports with Qt made unimportable.

A fresh interpreter installs an import hook that refuses the Qt packages, then
imports every sslstudio module except the GUI ones and uses the project store.
A core module that imports Qt (directly or through another module) fails here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BLOCKED = ("PySide6", "shiboken6", "pyqtgraph", "superqt", "qtpy", "PyQt5", "PyQt6")

SCRIPT = r"""
import importlib, importlib.abc, json, pkgutil, sys, tempfile, traceback
from pathlib import Path

BLOCKED = set(json.loads(sys.argv[1]))

class BlockQt(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked: core modules must not import Qt")
        return None

sys.meta_path.insert(0, BlockQt())
try:
    import PySide6  # the hook itself must work, or this test proves nothing
    sys.exit("the Qt blocker did not block PySide6")
except ImportError:
    pass

import sslstudio

def is_gui(name):
    return (name == "sslstudio.gui" or name.startswith("sslstudio.gui.")
            or name == "sslstudio.commands.gui" or name.endswith(".__main__"))

def walk(path, prefix):
    # pkgutil.walk_packages would import sslstudio.gui to look inside it; this does not.
    for info in pkgutil.iter_modules(path, prefix):
        if is_gui(info.name):
            continue
        yield info.name
        if info.ispkg:
            yield from walk(importlib.import_module(info.name).__path__, info.name + ".")

imported, failures = [], {}
for name in walk(sslstudio.__path__, "sslstudio."):
    try:
        importlib.import_module(name)
        imported.append(name)
    except Exception:
        failures[name] = traceback.format_exc(limit=-3)

from sslstudio.project import ProjectStore
tmp = Path(tempfile.mkdtemp())
(tmp / "images").mkdir()
store = ProjectStore.create(tmp / "project", tmp / "images")
store.add_class("cat")
store.close()

leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
print(json.dumps({"imported": imported, "failures": failures, "leaked": leaked}))
"""


def test_core_imports_and_runs_without_qt(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "SSLSTUDIO_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(BLOCKED)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["failures"] == {}, "\n".join(
        f"{name}:\n{trace}" for name, trace in result["failures"].items())
    assert result["leaked"] == []
    # the walk really covered the core (a broken walk must not pass silently)
    for module in ("sslstudio.cli", "sslstudio.paths", "sslstudio.project.store",
                   "sslstudio.project.labels_io", "sslstudio.commands.labels"):
        assert module in result["imported"]
    assert not any(name.startswith("sslstudio.gui") for name in result["imported"])


def test_project_store_does_not_pull_in_torch(tmp_path):
    """The store is the first thing the GUI opens; it must stay light (no torch, no Qt)."""
    code = ("import sys, sslstudio.project, sslstudio.project.labels_io, "
            "sslstudio.commands.labels; "
            "print(sorted(m for m in ('torch', 'PySide6') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True).stdout.strip()
    assert out == "[]"
