"""The guide's picture of the Pretrain page's Task options (contrastive, turn/slant/stroke off).

    xvfb-run -a -s "-screen 0 1400x900x24" .venv/bin/python docs/screenshots/task_options.py

Opens the built-in sample in a real window, selects the contrastive task, opens Task
options, sets three of them to 0 as the user guide describes, and saves
docs/guide/task-options.png (or --out). Uses its own SSLSTUDIO_HOME under /tmp.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from app_window import AppWindow

GUIDE = Path(__file__).resolve().parents[1] / "guide"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=GUIDE / "task-options.png")
    parser.add_argument("--home", type=Path,
                        default=Path(tempfile.gettempdir()) / "sslstudio-task-options")
    args = parser.parse_args()
    shown = AppWindow(args.home, "task_options")
    window, settle = shown.window, shown.settle
    shown.open_sample()
    page = window.show_page("Pretrain")
    page.select_task("contrastive")
    page.task_options_section.expand(animate=False)
    for name in ("degrees", "shear", "stroke_p"):
        page.task_options.editors[name].widget.setValue(0)
    settle(1.0)
    page.settings_scroll.ensureWidgetVisible(page.task_options.reset_button)
    settle(1.0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(args.out))
    print(f"task_options: {args.out}", file=sys.stderr)
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
