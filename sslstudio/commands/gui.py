"""`sslstudio gui [PROJECT_OR_FOLDER] [--sample]`: open the app (also what `sslstudio` alone does)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HELP = "open the app (the default when no command is given)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", metavar="PROJECT_OR_FOLDER",
                        help="a project folder, or an image folder to open (a project is "
                             "created for it under the default projects folder)")
    parser.add_argument("--sample", action="store_true",
                        help="open the built-in sample dataset (generated on first use)")
    parser.add_argument("--reset-settings", action="store_true",
                        help="forget per-user settings (recent projects, window layout) and "
                             "exit; projects on disk are not touched")
    # Hidden helpers for documentation and benchmarks.
    parser.add_argument("--screenshot", metavar="PNG", help=argparse.SUPPRESS)
    parser.add_argument("--page", metavar="TITLE", help=argparse.SUPPRESS)
    parser.add_argument("--quit-after", type=float, metavar="S", help=argparse.SUPPRESS)


def build_window(args: argparse.Namespace):
    """Create the app and the window and start opening what args asks for (no event loop)."""
    from sslstudio.gui.app import create_app
    from sslstudio.gui.main_window import MainWindow

    app = create_app()
    window = MainWindow()
    window.show()
    if args.sample:
        window.open_sample()
    elif args.path:
        window.open_path(_resolve(args.path))
    return app, window


def _resolve(arg: str) -> Path:
    """A path as given, or a bare project name under the default projects folder."""
    path = Path(arg).expanduser()
    if path.exists():
        return path
    from sslstudio.project import resolve_project_dir

    return resolve_project_dir(arg)


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    if args.reset_settings:
        from sslstudio.gui.settings import reset_settings

        print(f"settings reset ({reset_settings()})")
        return 0
    try:
        app, window = build_window(args)
    except ImportError as exc:
        print(f"sslstudio: the GUI cannot start: {exc}\n"
              "Install the Qt libraries (see README: ./dev app).", file=sys.stderr)
        return 1
    if args.page:
        from PySide6.QtCore import QTimer

        QTimer.singleShot(0, lambda: window.show_page(args.page))
    if args.screenshot:
        _schedule_screenshot(app, window, Path(args.screenshot), args.quit_after or 4.0)
    elif args.quit_after:
        from PySide6.QtCore import QTimer

        QTimer.singleShot(int(args.quit_after * 1000), window.close)
    if args.screenshot:
        print(f"window shown after {time.perf_counter() - started:.2f} s", file=sys.stderr)
    return int(app.exec())


def _schedule_screenshot(app, window, path: Path, delay_s: float) -> None:
    """Grab the window once things have settled, then quit (used for docs/screenshots)."""
    from PySide6.QtCore import QTimer

    def grab() -> None:
        if window.ctx.busy:  # wait for scans/sample generation to finish
            QTimer.singleShot(250, grab)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        window.grab().save(str(path))
        print(f"screenshot written to {path}", file=sys.stderr)
        window.close()
        app.quit()

    QTimer.singleShot(int(delay_s * 1000), grab)
