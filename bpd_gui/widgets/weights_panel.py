"""Pretrained backbone weights: whether each is on this machine, and importing a file.

Both go through the `bpd weights` command in a child process (`status --json`, `import
FILE --init X`): the check that an imported file loads strictly into the backbone needs
torch, which the app's own process never imports. The Train page asks the same status
before it starts a run.
"""

from __future__ import annotations

import json
import subprocess

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QLabel,
    QPushButton,
)

from bpd_gui.jobs import job_client
from bpd_gui.messages import show_error
from bpd_gui.widgets.cli_process import CliProcess

INIT_NAMES = {
    "xrv": "Adult chest X-ray ResNet-50 (xrv, the paper's)",
    "imagenet": "ImageNet ResNet-50",
}


def _parse_status(stdout: str) -> dict[str, dict]:
    return {row["init"]: row for row in json.loads(stdout)}


def read_status_now(timeout_s: float = 120) -> dict[str, dict]:
    """`bpd weights status --json`, waited for (when the Train page needs an answer and
    none was fetched yet). Raises OSError / ValueError when the command fails."""
    program, *lead = job_client.base_command()
    qenv = job_client.job_environment()
    env = {key: qenv.value(key) for key in qenv.keys()}  # noqa: SIM118 (a Qt object)
    done = subprocess.run(
        [program, *lead, "weights", "status", "--json"],
        cwd=job_client.repo_root(),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    if done.returncode != 0:
        raise OSError(done.stderr.strip()[-500:] or f"exit code {done.returncode}")
    return _parse_status(done.stdout)


def missing_weights_message(init: str | None, status: dict[str, dict]) -> str | None:
    """What to do when `init` needs weights this machine does not have; None if it needs
    none or they are present."""
    row = status.get(init or "")
    if row is None or row["present"]:
        return None
    return (
        f"The pretrained weights for '{init}' ({row['file_name']}) are not on this machine, "
        f"so this run cannot start.\n\nDownload the file on a machine with internet from\n"
        f"{row['url']}\nthen import it on the Settings page (Pretrained weights → Import…), "
        f"or run: bpd weights import FILE --init {init}\n\nOr choose the initialisation "
        f"'random' (no file needed; weaker on small cohorts)."
    )


class WeightsStatus(QObject):
    """The latest `bpd weights status`, fetched in the background and shared."""

    changed = Signal()
    failed = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: dict[str, dict] | None = None
        self.process = CliProcess(self)
        self.process.finished.connect(self._on_finished)

    def refresh(self) -> None:
        if not self.process.is_running():
            self.process.start(["weights", "status", "--json"])

    def is_busy(self) -> bool:
        return self.process.is_running()

    def _on_finished(self, ok: bool, message: str) -> None:
        if not ok:
            self.failed.emit(message)
            return
        try:
            self.rows = _parse_status(message)
        except (ValueError, KeyError) as exc:
            self.failed.emit(f"unexpected output of bpd weights status: {exc}")
            return
        self.changed.emit()

    def current(self) -> dict[str, dict]:
        """The status, fetched now (blocking) if none arrived yet."""
        if self.rows is None:
            self.process.cancel()
            self.rows = read_status_now()
            self.changed.emit()
        return self.rows

    def shutdown(self) -> None:
        self.process.cancel()


_SHARED: dict[str, WeightsStatus] = {}


def shared_status() -> WeightsStatus:
    """The app's one WeightsStatus per studio home (Settings shows it, Train checks it)."""
    from core import paths

    key = str(paths.studio_home())
    if key not in _SHARED:
        _SHARED[key] = WeightsStatus(QApplication.instance())
    return _SHARED[key]


def refusal_for(init: str | None) -> str | None:
    """Why the Train page must not start a run with this init (its weights are missing),
    or None. A status that cannot be read lets the run start: the job then says why."""
    if init not in INIT_NAMES:
        return None
    try:
        status = shared_status().current()
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    return missing_weights_message(init, status)


class WeightsPanel(QGroupBox):
    imported = Signal(str)  # init

    def __init__(self, status: WeightsStatus | None = None, parent=None):
        super().__init__("Pretrained weights", parent)
        self.setObjectName("weights_panel")
        self.status = status or shared_status()
        self.status.changed.connect(self._show_status)
        self.status.failed.connect(lambda msg: self.message.setText(f"Status unknown: {msg}"))
        self.importer = CliProcess(self)
        self.importer.finished.connect(self._on_imported)
        self._importing: str | None = None
        self.status_labels: dict[str, QLabel] = {}
        self.import_buttons: dict[str, QPushButton] = {}
        grid = QGridLayout(self)
        for i, init in enumerate(INIT_NAMES):
            status_label = QLabel("checking…")
            status_label.setObjectName(f"weights_status_{init}")
            status_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
            status_label.setWordWrap(True)
            button = QPushButton("Import…")
            button.setObjectName(f"weights_import_{init}")
            button.setToolTip("Check a weights file (it must load into this backbone) and copy it "
                              "to where training looks for it")  # fmt: skip
            button.clicked.connect(lambda _=False, n=init: self._choose(n))
            grid.addWidget(QLabel(INIT_NAMES[init]), i, 0)
            grid.addWidget(status_label, i, 1)
            grid.addWidget(button, i, 2)
            self.status_labels[init] = status_label
            self.import_buttons[init] = button
        grid.addWidget(QLabel("Random initialisation"), len(INIT_NAMES), 0)
        grid.addWidget(QLabel("built in (no file needed)"), len(INIT_NAMES), 1)
        self.message = QLabel(
            "Without internet on this machine: download the file elsewhere, then Import…"
        )
        self.message.setObjectName("weights_message")
        self.message.setWordWrap(True)
        grid.addWidget(self.message, len(INIT_NAMES) + 1, 0, 1, 3)
        grid.setColumnStretch(1, 1)

    @property
    def busy(self) -> bool:
        return self.importer.is_running() or self.status.is_busy()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self.status.rows is None:
            self.status.refresh()
        else:
            self._show_status()

    def _show_status(self) -> None:
        rows = self.status.rows or {}
        for init, label in self.status_labels.items():
            row = rows.get(init)
            if row is None:
                continue
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
        """`bpd weights import PATH --init INIT` in the background; the panel says how it went."""
        for b in self.import_buttons.values():
            b.setEnabled(False)
        self._importing = init
        self.message.setText(f"Checking {path}: it must load into the {init} ResNet-50…")
        self.importer.start(["weights", "import", str(path), "--init", init])

    def _on_imported(self, ok: bool, message: str) -> None:
        init, self._importing = self._importing, None
        for b in self.import_buttons.values():
            b.setEnabled(True)
        if not ok:
            self.message.setText(f"Not imported: {message}")
            show_error(self, "Weights not imported", message)
            return
        self.message.setText(message or f"Imported the {init} weights.")
        self.status.refresh()
        self.imported.emit(init or "")

    def shutdown(self) -> None:
        self.importer.cancel()
        self.status.shutdown()
