"""Settings page: where data lives, and the app's own preferences."""

from __future__ import annotations

from PySide6.QtCore import QSettings, Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from bpd_gui.widgets.weights_panel import WeightsPanel
from core import paths


class SettingsView(QWidget):
    def __init__(self, settings: QSettings, parent=None):
        super().__init__(parent)
        self.settings = settings
        folders = QGroupBox("Folders")
        form = QFormLayout(folders)
        for label, path in (
            ("BPD Studio home", paths.studio_home()),
            ("Runs", paths.runs_dir()),
            ("Image cache", paths.cache_dir()),
            ("Pretrained weights", paths.weights_dir()),
        ):
            row = QHBoxLayout()
            text = QLabel(str(path))
            text.setTextInteractionFlags(Qt.TextSelectableByMouse)
            button = QPushButton("Open")
            button.clicked.connect(lambda _=False, p=path: self._open(p))
            row.addWidget(text, 1)
            row.addWidget(button)
            form.addRow(label, row)
        hint = QLabel(
            "Set the environment variable BPD_STUDIO_HOME before starting the app to keep "
            "everything in another folder."
        )
        hint.setWordWrap(True)
        form.addRow(hint)

        behaviour = QGroupBox("Behaviour")
        b_layout = QVBoxLayout(behaviour)
        self.reopen = QCheckBox("Reopen the last cohort at start")
        self.reopen.setObjectName("reopen_last_cohort")
        self.reopen.setChecked(settings.value("reopen_last_cohort", True, type=bool))
        self.reopen.toggled.connect(lambda v: settings.setValue("reopen_last_cohort", v))
        b_layout.addWidget(self.reopen)

        self.weights = WeightsPanel()
        layout = QVBoxLayout(self)
        layout.addWidget(folders)
        layout.addWidget(self.weights)
        layout.addWidget(behaviour)
        layout.addStretch(1)

    @staticmethod
    def _open(path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))
