"""Packaging: the wheel carries the resources, they load through importlib.resources, the
desktop entry / metainfo agree with each other, and the GUI takes its icon from them."""

from __future__ import annotations

import configparser
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from sslstudio import resources

ROOT = Path(__file__).resolve().parent.parent


def _desktop_entry(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    parser.optionxform = str  # keys are case-sensitive
    parser.read(path, encoding="utf-8")
    return parser["Desktop Entry"]


def test_pyproject_declares_the_resources_as_package_data():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = meta["tool"]["setuptools"]["package-data"]["sslstudio"]
    assert any(p.startswith("resources/") for p in patterns)
    assert meta["project"]["scripts"]["sslstudio"] == "sslstudio.cli:main"


def test_icons_load_through_importlib_resources():
    pngs = resources.icon_pngs()
    assert sorted(pngs) == sorted(resources.ICON_SIZES)
    assert {16, 32, 48, 64, 128, 256, 512} <= set(pngs)
    for size, path in pngs.items():
        with Image.open(path) as img:
            assert img.format == "PNG" and img.size == (size, size) and img.mode == "RGBA"
            # not blank: the corners are transparent (rounded), the middle is painted
            assert img.getpixel((0, 0))[3] < 64    # (antialiased at 16 px)
            assert img.getpixel((size // 2, size // 2))[3] == 255
    svg = ET.parse(resources.icon_svg()).getroot()
    assert svg.tag.endswith("svg") and svg.get("viewBox") == "0 0 512 512"
    with Image.open(resources.resource_root() / "icons" / "sslstudio.ico") as ico:
        assert ico.format == "ICO" and (256, 256) in ico.info.get("sizes", {(256, 256)})


def test_desktop_entry_and_metainfo_agree():
    desktop = resources.desktop_file()
    meta = resources.metainfo_file()
    assert desktop.name == f"{resources.APP_ID}.desktop"
    entry = _desktop_entry(desktop)
    assert entry["Type"] == "Application" and entry["Name"] == "SSL Studio"
    assert entry["Exec"].split()[0] == "sslstudio"          # the console script
    assert entry["Icon"] == resources.ICON_NAME
    assert entry["Terminal"] == "false"
    root = ET.parse(meta).getroot()
    assert root.get("type") == "desktop-application"
    assert root.findtext("id") == resources.APP_ID
    assert root.findtext("launchable") == desktop.name
    assert root.findtext("provides/binary") == "sslstudio"
    from sslstudio import __version__
    assert root.find("releases/release").get("version") == __version__
    from sslstudio.gui.app import DESKTOP_ID
    assert DESKTOP_ID == resources.APP_ID   # Wayland app id = desktop file name


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None,
                    reason="desktop-file-validate not installed (apt-get install desktop-file-utils)")
def test_desktop_entry_validates():
    run = subprocess.run(["desktop-file-validate", str(resources.desktop_file())],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 0 and "error" not in run.stdout, run.stdout + run.stderr


@pytest.mark.skipif(shutil.which("appstreamcli") is None,
                    reason="appstreamcli not installed (apt-get install appstream)")
def test_metainfo_validates():
    run = subprocess.run(["appstreamcli", "validate", "--no-net", str(resources.metainfo_file())],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stdout + run.stderr


def test_install_desktop_entry_writes_a_menu_entry(tmp_path):
    written = resources.install_desktop_entry(str(tmp_path), exec_path="/opt/sslstudio/sslstudio")
    share = tmp_path / "share"
    entry = _desktop_entry(share / "applications" / f"{resources.APP_ID}.desktop")
    assert entry["Exec"] == "/opt/sslstudio/sslstudio gui %f"
    assert entry["TryExec"] == "/opt/sslstudio/sslstudio"
    assert (share / "icons/hicolor/256x256/apps/sslstudio.png").is_file()
    assert (share / "icons/hicolor/scalable/apps/sslstudio.svg").is_file()
    assert (share / "metainfo" / f"{resources.APP_ID}.metainfo.xml").is_file()
    removed = resources.uninstall_desktop_entry(str(tmp_path))
    assert sorted(removed) == sorted(written)
    assert not any(p.is_file() for p in share.rglob("*"))


def test_menu_entry_starts_this_installation_by_default(tmp_path, monkeypatch):
    """A menu does not see a venv's PATH: the entry names this install's own program, the
    bundle's executable when frozen, quoted when its path has spaces."""
    import sys

    resources.install_desktop_entry(str(tmp_path / "pip"))
    entry = _desktop_entry(tmp_path / "pip/share/applications" / f"{resources.APP_ID}.desktop")
    program = entry["TryExec"]
    assert Path(program).is_absolute() and Path(program).is_file()
    assert entry["Exec"] == f"{program} gui %f"
    bundle = tmp_path / "My Apps" / "sslstudio"
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(bundle))
    assert resources.default_exec() == str(bundle)
    resources.install_desktop_entry(str(tmp_path / "bundle"))
    path = tmp_path / "bundle/share/applications" / f"{resources.APP_ID}.desktop"
    entry = _desktop_entry(path)
    assert entry["Exec"] == f'"{bundle}" gui %f' and entry["TryExec"] == str(bundle)
    if shutil.which("desktop-file-validate"):
        run = subprocess.run(["desktop-file-validate", str(path)], capture_output=True,
                             text=True, timeout=30)
        assert run.returncode == 0 and not run.stdout.strip(), run.stdout + run.stderr


def _build_wheel(src: Path, out: Path) -> Path:
    """`python -m build --wheel` without isolation (no network); setuptools' PEP 517 hook if
    `build` is not installed (what `build` calls anyway)."""
    if importlib.util.find_spec("build") is not None:
        cmd = [sys.executable, "-m", "build", "--wheel", "--no-isolation",
               "--skip-dependency-check", "--outdir", str(out), str(src)]
    else:
        cmd = [sys.executable, "-c",
               "import sys; from setuptools import build_meta as b; b.build_wheel(sys.argv[1])",
               str(out)]
    run = subprocess.run(cmd, cwd=src, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    (wheel,) = out.glob("sslstudio-*.whl")
    return wheel


def test_wheel_contains_the_resources_and_they_load_from_an_install(tmp_path):
    # Build from a copy so the test never writes build/ or *.egg-info into the checkout.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "sslstudio", src / "sslstudio",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    wheel = _build_wheel(src, tmp_path / "dist")

    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "sslstudio = sslstudio.cli:main" in zf.read(entry_points).decode()
        zf.extractall(tmp_path / "site")  # a pure-Python wheel installs by unpacking
    expected = {f"sslstudio/resources/icons/hicolor/{s}x{s}/apps/sslstudio.png"
                for s in resources.ICON_SIZES}
    expected |= {"sslstudio/resources/icons/sslstudio.svg",
                 f"sslstudio/resources/linux/{resources.APP_ID}.desktop",
                 f"sslstudio/resources/linux/{resources.APP_ID}.metainfo.xml",
                 "sslstudio/gui/app.py", "sslstudio/cli.py"}
    assert expected <= names, sorted(expected - names)

    # Import the unpacked copy (not this checkout) and read the files back through it.
    probe = (
        "import json, sys; sys.path.insert(0, sys.argv[1]);"
        "import sslstudio.resources as r;"
        "print(json.dumps({'module': r.__file__, 'pngs': {s: p.read_bytes()[:8].hex()"
        " for s, p in r.icon_pngs().items()}, 'desktop': r.desktop_file().read_text()}))"
    )
    run = subprocess.run([sys.executable, "-I", "-c", probe, str(tmp_path / "site")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    assert Path(found["module"]).is_relative_to(tmp_path / "site")
    assert sorted(int(s) for s in found["pngs"]) == sorted(resources.ICON_SIZES)
    assert set(found["pngs"].values()) == {"89504e470d0a1a0a"}  # PNG signature
    assert "Name=SSL Studio" in found["desktop"]


def test_the_gui_takes_its_icon_and_name_from_the_resources(qapp, monkeypatch):
    pytest.importorskip("pytestqt")
    from sslstudio.gui import app as app_mod

    icon = app_mod.app_icon()
    sizes = {s.width() for s in icon.availableSizes()}
    assert set(resources.ICON_SIZES) <= sizes          # the PNG files, every size
    image = icon.pixmap(64, 64).toImage()
    expected = Image.open(resources.icon_png(64)).convert("RGBA").getpixel((32, 32))
    got = image.pixelColor(32, 32)
    assert (got.red(), got.green(), got.blue()) == expected[:3]

    # without the resource files the drawn icon stands in
    monkeypatch.setattr(resources, "icon_pngs", lambda: {})
    monkeypatch.setattr(resources, "icon_svg", lambda: None)
    drawn = app_mod.app_icon()
    assert not drawn.isNull()
    assert {s.width() for s in drawn.availableSizes()} == {16, 32, 64, 128, 256}


def test_a_fresh_app_gets_the_name_desktop_id_and_resource_icon():
    # in a child process: the test session's QApplication already exists
    probe = ("import json; from sslstudio.gui.app import create_app; a = create_app();"
             "print(json.dumps([a.applicationName(), a.applicationDisplayName(),"
             " a.desktopFileName(), a.organizationName(),"
             " sorted({s.width() for s in a.windowIcon().availableSizes()})]))")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60, env=env, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    name, display, desktop_id, org, sizes = json.loads(run.stdout.strip().splitlines()[-1])
    assert (name, display, desktop_id, org) == ("SSL Studio", "SSL Studio",
                                               resources.APP_ID, "sslstudio")
    assert sizes == sorted(resources.ICON_SIZES)
