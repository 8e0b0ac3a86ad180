"""Pretrained backbone weights: whether each is on this machine, and importing a file.

An imported file is checked by core (core.models.weights.import_weights: tensors only,
loads strictly into the backbone) on a worker thread before it is copied into place.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QLabel,
    QPushButton,
)

from bpd_gui.messages import show_error
from bpd_gui.workers import TaskRunner

INIT_NAMES = {
    "xrv": "Adult chest X-ray ResNet-50 (xrv, the paper's)",
    "imagenet": "ImageNet ResNet-50",
}


def weights_status() -> list[dict]:
    from core.models.weights import weights_status as status

    return status()


def request_init(request) -> str:
    """The init a Train request will use: its own, else its preset's (core's default)."""
    from core.training.config import preset

    init = getattr(request, "init", None)
    return init or preset(getattr(request, "preset", None) or "paper").init


def missing_weights_message(init: str | None) -> str | None:
    """What to do when a run's init needs weights this machine does not have; None if
    the init needs none or they are present."""
    from core.models.weights import PRETRAINED_INITS, find_weights, weights_source

    if init not in PRETRAINED_INITS or find_weights(init) is not None:
        return None
    src = weights_source(init)
    return (
        f"The pretrained weights for '{init}' ({src.file_name}) are not on this machine, so "
        f"this run cannot start.\n\nImport the file on the Settings page (Pretrained "
        f"weights → Import…), after downloading it on a machine with internet from:\n"
        f"{src.url}\n\nOr choose the initialisation 'random' (no file needed; weaker on "
        f"small cohorts)."
    )


class WeightsPanel(QGroupBox):
    imported = Signal(str, str)  # init, destination path

    def __init__(self, tasks: TaskRunner | None = None, parent=None):
        super().__init__("Pretrained weights", parent)
        self.setObjectName("weights_panel")
        self.tasks = tasks or TaskRunner(1, self)
        self.status_labels: dict[str, QLabel] = {}
        self.import_buttons: dict[str, QPushButton] = {}
        self.busy = False
        grid = QGridLayout(self)
        for i, init in enumerate(INIT_NAMES):
            name = QLabel(INIT_NAMES[init])
            status = QLabel("…")
            status.setObjectName(f"weights_status_{init}")
            status.setTextInteractionFlags(Qt.TextSelectableByMouse)
            status.setWordWrap(True)
            button = QPushButton("Import…")
            button.setObjectName(f"weights_import_{init}")
            button.clicked.connect(lambda _=False, n=init: self._choose(n))
            grid.addWidget(name, i, 0)
            grid.addWidget(status, i, 1)
            grid.addWidget(button, i, 2)
            self.status_labels[init] = status
            self.import_buttons[init] = button
        grid.addWidget(QLabel("Random initialisation"), len(INIT_NAMES), 0)
        grid.addWidget(QLabel("built in (no file needed)"), len(INIT_NAMES), 1)
        self.message = QLabel("")
        self.message.setObjectName("weights_message")
        self.message.setWordWrap(True)
        grid.addWidget(self.message, len(INIT_NAMES) + 1, 0, 1, 3)
        grid.setColumnStretch(1, 1)
        self.rows: dict[str, dict] | None = None  # read when first shown: torch loads slowly

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self.rows is None and not self.busy:
            self.refresh()

    def refresh(self) -> None:
        """Read the status on a worker thread (importing torch takes seconds)."""
        self.tasks.submit(weights_status, on_done=self._show_status,
                          on_error=lambda msg: self.message.setText(msg))  # fmt: skip

    def _show_status(self, rows: list[dict]) -> None:
        self.rows = {row["init"]: row for row in rows}
        for init, label in self.status_labels.items():
            row = self.rows[init]
            if row["present"]:
                label.setText(f"<b>present</b> · {row['path']}")
                label.setStyleSheet("color: #2e7d32;")
            else:
                label.setText(f"<b>missing</b> · needs {row['file_name']} (from {row['url']})")
                label.setStyleSheet("color: #c62828;")

    def _choose(self, init: str) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            f"Weights file for {INIT_NAMES[init]}",
            "",
            "PyTorch weights (*.pt *.pth);;All (*)",
        )
        if path:
            self.import_file(path, init)

    def import_file(self, path: str, init: str) -> None:
        """Check and copy `path` in the background; the panel says how it went."""
        from core.models.weights import import_weights

        self.busy = True
        for b in self.import_buttons.values():
            b.setEnabled(False)
        self.message.setText(f"Checking {path} (it must load into the {init} ResNet-50)…")
        self.tasks.submit(
            import_weights, path, init,
            on_done=lambda dest, n=init: self._on_done(n, str(dest)),
            on_error=lambda msg: self._on_failed(msg),
        )  # fmt: skip

    def _finish(self) -> None:
        self.busy = False
        for b in self.import_buttons.values():
            b.setEnabled(True)
        self.refresh()

    def _on_done(self, init: str, dest: str) -> None:
        self._finish()
        self.message.setText(f"Imported the {init} weights: {dest}")
        self.imported.emit(init, dest)

    def _on_failed(self, message: str) -> None:
        self._finish()
        self.message.setText(f"Not imported: {message}")
        show_error(self, "Weights not imported", message)
