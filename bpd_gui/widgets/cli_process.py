"""A short `bpd` command (explain, predict) as a child process, with its progress.

Like training jobs, the work runs in a separate `bpd` process (the app computes no ML
itself and a crash there cannot take the window down); unlike them it belongs to the
window: it stops when the app closes. Progress is read from the command's progress bar
on stderr ("label [###---]  42.0%"); the last stderr lines explain a failure.
"""

from __future__ import annotations

import re

from PySide6.QtCore import QObject, QProcess, Signal

from bpd_gui.jobs import job_client

_PERCENT = re.compile(r"(\d+(?:\.\d+)?)%")


class CliProcess(QObject):
    progress = Signal(float)  # 0..1
    finished = Signal(bool, str)  # ok, message (stdout when ok, the error when not)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.process: QProcess | None = None
        self._stdout = ""
        self._stderr = ""
        self._cancelled = False
        self.exit_code: int | None = None
        self._ok_codes: tuple[int, ...] = (0,)

    def is_running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.NotRunning

    def start(self, arguments: list[str], ok_codes: tuple[int, ...] = (0,)) -> None:
        """Run `bpd ARGUMENTS`; exit codes in `ok_codes` count as success."""
        if self.is_running():
            raise RuntimeError("a command is already running")
        self._stdout = self._stderr = ""
        self.exit_code = None
        self._ok_codes = ok_codes
        self._cancelled = False
        program, *lead = job_client.base_command()
        proc = QProcess(self)
        proc.setProcessEnvironment(job_client.job_environment())
        proc.setWorkingDirectory(str(job_client.repo_root()))
        proc.readyReadStandardOutput.connect(self._read_stdout)
        proc.readyReadStandardError.connect(self._read_stderr)
        proc.finished.connect(self._on_finished)
        proc.errorOccurred.connect(self._on_error)
        self.process = proc
        proc.start(program, [*lead, *arguments])

    def cancel(self) -> None:
        """Stop the command; no `finished` follows (the caller moved on)."""
        if self.is_running():
            self._cancelled = True
            self.process.kill()
            self.process.waitForFinished(3000)

    def _read_stdout(self) -> None:
        self._stdout += bytes(self.process.readAllStandardOutput()).decode("utf-8", "replace")

    def _read_stderr(self) -> None:
        text = bytes(self.process.readAllStandardError()).decode("utf-8", "replace")
        self._stderr += text
        found = _PERCENT.findall(text)
        if found:
            self.progress.emit(min(1.0, float(found[-1]) / 100.0))

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.finished.emit(
                False, f"could not start the bpd command: {self.process.errorString()}"
            )

    def _on_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        if self._cancelled:
            return
        self._read_stdout()
        self._read_stderr()
        self.exit_code = code if status == QProcess.NormalExit else None
        if self.exit_code in self._ok_codes:
            self.finished.emit(True, self._stdout.strip())
            return
        # the progress bar redraws with \r: keep only real lines for the message
        lines = [ln.strip() for ln in re.split(r"[\r\n]+", self._stderr) if ln.strip()]
        lines = [ln for ln in lines if not _PERCENT.search(ln) or "error" in ln.lower()]
        detail = "\n".join(lines[-8:]) or f"exit code {code}"
        self.finished.emit(False, detail)
