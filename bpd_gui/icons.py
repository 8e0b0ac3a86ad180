"""Navigation icons: SVG files in resources/icons (drawn for this app)."""

from __future__ import annotations

from PySide6.QtGui import QIcon

from core import paths


def page_icon(name: str) -> QIcon:
    path = paths.resources_dir() / "icons" / f"{name}.svg"
    return QIcon(str(path)) if path.is_file() else QIcon()


def app_icon() -> QIcon:
    return page_icon("app")
