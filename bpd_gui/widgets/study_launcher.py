"""Starting a `bpd study` from the Train page and following its arms.

The study runs as one detached `bpd study --config FILE --out DIR --quiet` process (like
a training job, it outlives the app if the user leaves it running). Each arm is a run
folder inside the study; the arm being trained is found through StudyFolder.running_arm
and handed to the Train page, which follows it like any other run.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from bpd_gui.jobs import job_client
from core import paths
from core.errors import BPDError
from core.runs.folder import default_run_dir
from core.study.config import StudyConfig
from core.study.folder import StudyFolder

POLL_MS = 1000


def study_arguments(config_file: Path, study_dir: Path) -> list[str]:
    return ["study", "--config", str(config_file), "--out", str(study_dir), "--quiet"]


class StudyLauncher(QObject):
    arm_started = Signal(object)  # Path of the arm's run folder now training
    ended = Signal(int)  # the study process's exit code

    def __init__(self, parent=None):
        super().__init__(parent)
        self.study_dir: Path | None = None
        self.config: StudyConfig | None = None
        self.process: subprocess.Popen | None = None
        self._seen: set[str] = set()
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self.poll)

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, config: StudyConfig) -> Path:
        """Write the study config beside the app's logs and start the study process.
        Raises OSError when it cannot start."""
        if self.is_running():
            raise OSError("a study is already running; wait for it or stop it first")
        study_dir = default_run_dir("study", paths.runs_dir())
        config_file = job_client.logs_dir() / f"{study_dir.name}.study-config.json"
        config_file.parent.mkdir(parents=True, exist_ok=True)
        config.write(config_file)
        self.process = job_client.start_detached(study_arguments(config_file, study_dir), study_dir)
        self.study_dir, self.config, self._seen = study_dir, config, set()
        self._timer.start()
        return study_dir

    def poll(self) -> None:
        if self.study_dir is None:
            return
        try:
            arm = (
                StudyFolder(self.study_dir).running_arm()
                if StudyFolder.looks_like_study(self.study_dir)
                else None
            )
        except BPDError:
            arm = None
        if arm is not None and arm not in self._seen:
            self._seen.add(arm)
            self.arm_started.emit(StudyFolder(self.study_dir).arm_path(arm))
        if self.process is not None and self.process.poll() is not None:
            self._timer.stop()
            code = self.process.returncode
            self.process = None
            self.ended.emit(code)

    def stop(self) -> None:
        """Ask the study to stop after the current batch (it resumes with
        `bpd study resume DIR`)."""
        if self.is_running():
            job_client.request_stop(self.process.pid)
