"""Navigation icons: SVG files in resources/icons (drawn for this app).

Each icon gets a white variant for the selected (dark blue) navigation entry.
"""

from __future__ import annotations

from PySide6.QtGui import QIcon, QPixmap

from core import paths

ACCENT = "#2b5d8a"
PIXELS = 48


def _pixmap(svg: str) -> QPixmap:
    pixmap = QPixmap()
    pixmap.loadFromData(svg.encode("utf-8"), "SVG")
    return pixmap.scaled(PIXELS, PIXELS) if not pixmap.isNull() else pixmap


def page_icon(name: str) -> QIcon:
    path = paths.resources_dir() / "icons" / f"{name}.svg"
    if not path.is_file():
        return QIcon()
    svg = path.read_text(encoding="utf-8")
    icon = QIcon()
    normal = _pixmap(svg)
    if normal.isNull():  # no SVG image plugin: let QIcon try the file itself
        return QIcon(str(path))
    icon.addPixmap(normal, QIcon.Normal)
    icon.addPixmap(_pixmap(svg.replace(ACCENT, "#ffffff")), QIcon.Selected)
    return icon


def app_icon() -> QIcon:
    path = paths.resources_dir() / "icons" / "app.svg"
    return QIcon(str(path)) if path.is_file() else QIcon()
