"""About box: versions (read from package metadata, without importing torch) and the notice."""

from __future__ import annotations

import platform
from importlib import metadata

from PySide6.QtWidgets import QMessageBox, QWidget

from bpd_gui.views.simple_pages import NOTICE


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def versions() -> dict[str, str]:
    import PySide6

    from core import __version__

    return {
        "bpd-studio": __version__,
        "Python": platform.python_version(),
        "torch": package_version("torch"),
        "torchvision": package_version("torchvision"),
        "torchxrayvision": package_version("torchxrayvision"),
        "PySide6": PySide6.__version__,
        "pyqtgraph": package_version("pyqtgraph"),
    }


def about_text() -> str:
    rows = "".join(f"<tr><td>{k}</td><td><b>{v}</b></td></tr>" for k, v in versions().items())
    return (
        "<h3>BPD Studio</h3>"
        "<p>Bronchopulmonary dysplasia prediction from day-1 chest radiographs, after "
        "Goedicke-Fritz et al., arXiv:2507.12269 (2025).</p>"
        f"<table cellspacing='6'>{rows}</table>"
        f"<p style='color:#b00020'><b>{NOTICE}</b></p>"
    )


def show_about(parent: QWidget | None) -> QMessageBox:
    box = QMessageBox(parent)
    box.setObjectName("about_box")
    box.setWindowTitle("About BPD Studio")
    box.setText(about_text())
    box.setStandardButtons(QMessageBox.Ok)
    box.open()
    return box
