"""QApplication set-up: name, icon, high-DPI, the Fusion style in the system's light or dark mode."""

from __future__ import annotations

import sys

from PySide6.QtCore import QCoreApplication, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtWidgets import QApplication

APP_NAME = "SSL Studio"
ORGANIZATION = "sslstudio"
DESKTOP_ID = "org.sslstudio.SSLStudio"  # = sslstudio.resources.APP_ID


def resource_icon() -> QIcon | None:
    """The icon shipped in sslstudio/resources (PNGs at every size, else the SVG); None if absent."""
    try:
        from sslstudio import resources
    except ImportError:
        return None
    icon = QIcon()
    for png in resources.icon_pngs().values():
        icon.addFile(str(png))
    if icon.isNull():
        svg = resources.icon_svg()
        if svg is not None:
            icon.addFile(str(svg))  # needs Qt's SVG icon engine plugin
    return None if icon.isNull() or not icon.availableSizes() else icon


def drawn_icon() -> QIcon:
    """The same icon drawn with QPainter (four tiles: three labelled, one not), no file needed."""
    icon = QIcon()
    for size in (16, 32, 64, 128, 256):
        pixmap = QPixmap(size, size)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor("#2d3a4a"))
        painter.drawRoundedRect(QRectF(0, 0, size, size), size * 0.18, size * 0.18)
        # the geometry of resources/icons/sslstudio.svg: margin 64, tile 172, gap 40 of 512
        margin, tile, gap = size * 0.125, size * 0.336, size * 0.078
        colors = ["#4e79a7", "#f28e2b", "#59a14f", "#9aa5b1"]
        for i, color in enumerate(colors):
            x = margin + (i % 2) * (tile + gap)
            y = margin + (i // 2) * (tile + gap)
            painter.setBrush(QColor(color))
            painter.drawRoundedRect(QRectF(QPointF(x, y), QPointF(x + tile, y + tile)),
                                    size * 0.06, size * 0.06)
        painter.end()
        icon.addPixmap(pixmap)
    return icon


def app_icon() -> QIcon:
    """The application icon: the resource files when installed with them, else the drawn one."""
    return resource_icon() or drawn_icon()


def dark_palette() -> QPalette:
    palette = QPalette()
    role, group = QPalette.ColorRole, QPalette.ColorGroup
    for r, c in {role.Window: "#2b2d30", role.WindowText: "#e6e6e6", role.Base: "#1f2023",
                 role.AlternateBase: "#2b2d30", role.ToolTipBase: "#3a3d41",
                 role.ToolTipText: "#e6e6e6", role.Text: "#e6e6e6", role.Button: "#35383c",
                 role.ButtonText: "#e6e6e6", role.BrightText: "#ff6b6b", role.Link: "#6cb4ff",
                 role.Highlight: "#3d7bd9", role.HighlightedText: "#ffffff",
                 role.Mid: "#8a8f96", role.PlaceholderText: "#8a8f96"}.items():
        palette.setColor(r, QColor(c))
    for r in (role.Text, role.ButtonText, role.WindowText):
        palette.setColor(group.Disabled, r, QColor("#7b7f85"))
    return palette


def system_prefers_dark(app: QGuiApplication) -> bool:
    try:
        return app.styleHints().colorScheme() == Qt.ColorScheme.Dark
    except AttributeError:  # Qt < 6.5: judge from the palette
        return app.palette().color(QPalette.ColorRole.Window).lightness() < 128


def apply_style(app: QApplication) -> None:
    """Fusion everywhere (consistent on every OS), with a dark palette when the system is dark."""
    app.setStyle("Fusion")
    if system_prefers_dark(app):
        app.setPalette(dark_palette())
    else:
        app.setPalette(app.style().standardPalette())


def create_app(argv: list[str] | None = None) -> QApplication:
    """The QApplication (the existing one if a test or caller already made it)."""
    existing = QApplication.instance()
    if existing is not None:
        return existing  # type: ignore[return-value]
    QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
        Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    QCoreApplication.setApplicationName(APP_NAME)
    QCoreApplication.setOrganizationName(ORGANIZATION)
    # Wayland app id / X11 startup hint: the name of the installed .desktop file
    QGuiApplication.setDesktopFileName(DESKTOP_ID)
    app = QApplication(list(argv) if argv is not None else sys.argv[:1])
    app.setApplicationDisplayName(APP_NAME)
    app.setWindowIcon(app_icon())
    apply_style(app)
    return app
