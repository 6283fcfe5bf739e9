"""Files that ship inside the package: the application icon, the Linux desktop entry, metainfo.

No Qt here (the core never imports Qt); the GUI turns these paths into a QIcon.

    python -m sslstudio.resources install-desktop [--prefix ~/.local] [--uninstall]

puts the .desktop file, the AppStream metainfo and the icons where freedesktop
desktops look for them, so SSL Studio appears in the application menu.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from importlib import resources
from pathlib import Path

APP_ID = "org.sslstudio.SSLStudio"   # desktop file name (without .desktop), AppStream id
ICON_NAME = "sslstudio"              # freedesktop icon name (Icon= in the desktop file)
ICON_SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)


def resource_root():
    """A Traversable for this folder (a real directory in every install we ship)."""
    return resources.files(__name__)


def _path(*parts: str) -> Path | None:
    node = resource_root().joinpath(*parts)
    return Path(str(node)) if node.is_file() else None


def icon_svg() -> Path | None:
    return _path("icons", f"{ICON_NAME}.svg")


def icon_png(size: int) -> Path | None:
    return _path("icons", "hicolor", f"{size}x{size}", "apps", f"{ICON_NAME}.png")


def icon_pngs() -> dict[int, Path]:
    """Every icon size present, smallest first."""
    found = {size: icon_png(size) for size in ICON_SIZES}
    return {size: p for size, p in found.items() if p is not None}


def desktop_file() -> Path | None:
    return _path("linux", f"{APP_ID}.desktop")


def metainfo_file() -> Path | None:
    return _path("linux", f"{APP_ID}.metainfo.xml")


def _data_home(prefix: str | None) -> Path:
    if prefix:
        return Path(prefix).expanduser() / "share"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def default_exec() -> str:
    """The program a menu entry should start: this very installation, by absolute path.

    A menu does not see a venv's PATH, so a bare `sslstudio` would often not be found:
    a bundle names its own executable; a pip install the `sslstudio` script beside its
    Python (a venv's bin/), else the one on PATH.
    """
    if getattr(sys, "frozen", False):
        return sys.executable
    beside = Path(sys.executable).parent / ("sslstudio.exe" if os.name == "nt" else "sslstudio")
    if beside.is_file():
        return str(beside)
    return shutil.which("sslstudio") or "sslstudio"


def _desktop_exec_quote(path: str) -> str:
    """Quote a program path for Exec= (Desktop Entry spec: reserved characters need quotes)."""
    if not any(c in path for c in ' \t\n"\'\\><~|&;$*?#()`'):
        return path
    quoted = "".join("\\" + c if c in '"`$\\' else c for c in path)
    return '"' + quoted.replace("\\", "\\\\") + '"'   # then the string-value escape of \\


def install_desktop_entry(prefix: str | None = None, exec_path: str | None = None) -> list[Path]:
    """Copy the desktop entry, metainfo and icons under PREFIX/share (default ~/.local/share).

    exec_path replaces the `sslstudio` in Exec=/TryExec= (e.g. a PyInstaller bundle's
    absolute path); by default this installation's own program (`default_exec`).
    """
    share = _data_home(prefix)
    written: list[Path] = []
    desktop = desktop_file()
    if desktop is None:
        raise FileNotFoundError("the desktop entry is missing from this installation")
    text = desktop.read_text(encoding="utf-8")
    exec_path = exec_path or default_exec()
    if exec_path != "sslstudio":
        text = text.replace("Exec=sslstudio ", f"Exec={_desktop_exec_quote(exec_path)} ")
        text = text.replace("TryExec=sslstudio", f"TryExec={exec_path}")
    target = share / "applications" / desktop.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    written.append(target)
    meta = metainfo_file()
    if meta is not None:
        target = share / "metainfo" / meta.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(meta, target)
        written.append(target)
    for size, png in icon_pngs().items():
        target = share / "icons" / "hicolor" / f"{size}x{size}" / "apps" / png.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, target)
        written.append(target)
    svg = icon_svg()
    if svg is not None:
        target = share / "icons" / "hicolor" / "scalable" / "apps" / svg.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(svg, target)
        written.append(target)
    return written


def uninstall_desktop_entry(prefix: str | None = None) -> list[Path]:
    share = _data_home(prefix)
    candidates = [share / "applications" / f"{APP_ID}.desktop",
                  share / "metainfo" / f"{APP_ID}.metainfo.xml",
                  share / "icons" / "hicolor" / "scalable" / "apps" / f"{ICON_NAME}.svg"]
    candidates += [share / "icons" / "hicolor" / f"{s}x{s}" / "apps" / f"{ICON_NAME}.png"
                   for s in ICON_SIZES]
    removed = []
    for path in candidates:
        if path.is_file():
            path.unlink()
            removed.append(path)
    return removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sslstudio.resources",
                                     description="Install SSL Studio into the desktop's application menu.")
    sub = parser.add_subparsers(dest="action", required=True)
    inst = sub.add_parser("install-desktop", help="install the desktop entry, metainfo and icons")
    inst.add_argument("--prefix", help="install under PREFIX/share (default: ~/.local/share)")
    inst.add_argument("--exec", dest="exec_path",
                      help="program to start (default: this installation's own sslstudio)")
    inst.add_argument("--uninstall", action="store_true", help="remove what install-desktop wrote")
    args = parser.parse_args(argv)
    if args.uninstall:
        done = uninstall_desktop_entry(args.prefix)
        verb = "removed"
    else:
        done = install_desktop_entry(args.prefix, args.exec_path)
        verb = "installed"
    for path in done:
        print(f"{verb} {path}")
    if not done:
        print("nothing to do")
    return 0


if __name__ == "__main__":
    sys.exit(main())
