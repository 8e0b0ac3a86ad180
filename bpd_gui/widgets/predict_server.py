"""The Predict page's long-lived `bpd predict MODEL --serve` child process.

A new `bpd predict` per click paid the imports and model loading every time; this child
loads the model(s) once and answers one JSON request per line (core/cli/predict_serve.py).
It stays a separate process (the app computes no ML and never imports torch). One child
per model: a different model stops it and starts another; a child that died is started
again by the next request. Its stdin is the app's pipe, so it ends at the end of stdin
even if the app itself is killed: no orphan.
"""

from __future__ import annotations

import json
import re

from PySide6.QtCore import QObject, QProcess, Signal

from bpd_gui.jobs import job_client

STDERR_KEPT = 20_000  # characters of the child's stderr kept for error messages
STOP_WAIT_MS = 3000  # how long an idle child gets to end at the end of its stdin


class PredictServer(QObject):
    ready = Signal(str)  # the model's description, once the child has it loaded
    progress = Signal(float)  # 0..1 of the request in flight
    finished = Signal(bool, str)  # as CliProcess: ok, message (the error when not ok)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.process: QProcess | None = None
        self.model: str | None = None
        self.description = ""
        self.last_answer: dict = {}
        self._stdout = b""
        self._stderr = ""
        self._pending = None  # id of the request in flight
        self._next_id = 0

    # --- state ----------------------------------------------------------------------
    def is_running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.NotRunning

    def is_busy(self) -> bool:
        """A request is in flight."""
        return self._pending is not None

    def pid(self) -> int | None:
        return int(self.process.processId()) if self.is_running() else None

    # --- control --------------------------------------------------------------------
    def start(self, model: str) -> None:
        """The child for `model`; the one for another model is stopped first. Does
        nothing when it already runs for `model`."""
        if self.is_running() and self.model == model:
            return
        self.stop()
        self.model, self.description = model, ""
        self._stdout, self._stderr = b"", ""
        program, *lead = job_client.base_command()
        proc = QProcess(self)
        proc.setProcessEnvironment(job_client.job_environment())
        proc.setWorkingDirectory(str(job_client.repo_root()))
        proc.readyReadStandardOutput.connect(lambda p=proc: self._read_stdout(p))
        proc.readyReadStandardError.connect(lambda p=proc: self._read_stderr(p))
        proc.finished.connect(lambda code, status, p=proc: self._on_exit(p, code, status))
        proc.errorOccurred.connect(lambda error, p=proc: self._on_error(p, error))
        self.process = proc
        proc.start(program, [*lead, "predict", model, "--serve", "--quiet"])

    def submit(self, model: str, request: dict) -> None:
        """Send one prediction request (inputs, out and options, by `bpd predict`'s
        option names); `finished` follows. Starts the child if needed."""
        if self.is_busy():
            raise RuntimeError("a prediction is already running")
        self.start(model)
        self._next_id += 1
        self._pending = self._next_id
        line = json.dumps({**request, "id": self._pending}) + "\n"
        self.process.write(line.encode("utf-8"))

    def stop(self) -> None:
        """End the child: at the end of its stdin when idle, killed when busy (the
        caller moved on; no `finished` follows)."""
        proc, self.process = self.process, None
        busy, self._pending = self._pending is not None, None
        if proc is None:
            return
        for sig in (proc.readyReadStandardOutput, proc.readyReadStandardError,
                    proc.finished, proc.errorOccurred):  # fmt: skip
            sig.disconnect()
        if proc.state() != QProcess.NotRunning:
            proc.closeWriteChannel()
            if busy or not proc.waitForFinished(STOP_WAIT_MS):
                proc.kill()
                proc.waitForFinished(STOP_WAIT_MS)
        proc.deleteLater()

    # --- the child's output ---------------------------------------------------------
    def _read_stdout(self, proc: QProcess) -> None:
        if proc is not self.process:
            return
        self._stdout += bytes(proc.readAllStandardOutput())
        *lines, self._stdout = self._stdout.split(b"\n")
        for raw in lines:
            if raw.strip():
                self._on_answer(raw.decode("utf-8", "replace"))

    def _read_stderr(self, proc: QProcess) -> None:
        if proc is self.process:
            text = bytes(proc.readAllStandardError()).decode("utf-8", "replace")
            self._stderr = (self._stderr + text)[-STDERR_KEPT:]

    def _on_answer(self, line: str) -> None:
        try:
            answer = json.loads(line)
        except json.JSONDecodeError:
            self._stderr += line + "\n"  # not an answer: keep it for a message
            return
        event = answer.get("event")
        if event == "ready":
            self.description = str(answer.get("model") or "")
            self.ready.emit(self.description)
            return
        if self._pending is None or answer.get("id") != self._pending:
            return  # an answer to a request the page no longer waits for
        if event == "progress" and answer.get("total"):
            self.progress.emit(min(1.0, answer["done"] / answer["total"]))
        elif event in ("done", "error"):
            self._pending = None
            self.last_answer = answer
            ok = event == "done"
            self.finished.emit(ok, "" if ok else str(answer.get("message") or "failed"))

    def _on_error(self, proc: QProcess, error: QProcess.ProcessError) -> None:
        if proc is self.process and error == QProcess.ProcessError.FailedToStart:
            self._fail(f"could not start the bpd command: {proc.errorString()}")

    def _on_exit(self, proc: QProcess, code: int, status: QProcess.ExitStatus) -> None:
        if proc is not self.process:
            return
        self._read_stdout(proc)
        self._read_stderr(proc)
        self.process = None  # the next request starts a new child
        proc.deleteLater()
        how = f"exit code {code}" if status == QProcess.NormalExit else "it crashed"
        self._fail(self._stderr_tail() or f"the prediction process ended ({how})")

    def _fail(self, message: str) -> None:
        if self._pending is not None:
            self._pending = None
            self.finished.emit(False, message)

    def _stderr_tail(self) -> str:
        # keep real lines, not progress redraws
        lines = [ln.strip() for ln in re.split(r"[\r\n]+", self._stderr) if ln.strip()]
        return "\n".join(lines[-8:])
