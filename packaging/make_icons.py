"""Render sslstudio/resources/icons/sslstudio.svg into the PNG sizes desktops expect.

Run from the repository root after editing the SVG:

    QT_QPA_PLATFORM=offscreen .venv/bin/python packaging/make_icons.py

Writes sslstudio/resources/icons/hicolor/NxN/apps/sslstudio.png (the freedesktop
icon-theme layout, so the folder can be copied under ~/.local/share/icons/) and
sslstudio.ico (Windows, for the PyInstaller bundle).
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

ICONS = Path(__file__).resolve().parent.parent / "sslstudio" / "resources" / "icons"
SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)


def render(renderer: QSvgRenderer, size: int) -> QImage:
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter, QRectF(0, 0, size, size))
    painter.end()
    return image


def main() -> int:
    _app = QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(ICONS / "sslstudio.svg"))
    if not renderer.isValid():
        print("cannot read the SVG", file=sys.stderr)
        return 1
    for size in SIZES:
        out = ICONS / "hicolor" / f"{size}x{size}" / "apps" / "sslstudio.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        if not render(renderer, size).save(str(out)):
            print(f"cannot write {out}", file=sys.stderr)
            return 1
        print(f"{out.relative_to(ICONS.parent.parent.parent)}  {out.stat().st_size} bytes")
    try:  # Pillow writes a multi-size .ico from the largest PNG
        from PIL import Image

        big = Image.open(ICONS / "hicolor" / "256x256" / "apps" / "sslstudio.png")
        big.save(ICONS / "sslstudio.ico", sizes=[(s, s) for s in ICO_SIZES])
        print(f"sslstudio/resources/icons/sslstudio.ico  {(ICONS / 'sslstudio.ico').stat().st_size} bytes")
    except ImportError:
        print("Pillow missing: no .ico written", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
