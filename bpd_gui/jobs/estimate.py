"""How fast this machine trains, measured by a child process, for the duration estimate.

Runs `bpd bench train --resolution N --batch-size B --steps S` (its last line is JSON
with "work_units_per_s"); the estimate itself is core's work model
(core.training.estimate), the one the runner's progress and ETA use. Where the command
does not exist, or fails, the estimate waits for the run's first epoch and says so.
"""

from __future__ import annotations

import json
import math

from PySide6.QtCore import QObject, QProcess, Signal

from bpd_gui.jobs import job_client

BENCH_STEPS = 3


def parse_bench_output(text: str) -> float | None:
    value = bench_json(text).get("work_units_per_s")
    if isinstance(value, int | float) and math.isfinite(value) and value > 0:
        return float(value)
    return None


def bench_json(text: str) -> dict:
    """The last JSON line of `bpd bench train` ({} if none): work units/s, and "path"
    (which precision path ran and why) and "workers" (folds a run trains at once)."""
    for line in reversed([ln.strip() for ln in text.splitlines() if ln.strip()]):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        return data if isinstance(data, dict) else {}
    return {}


class BenchRunner(QObject):
    """One measurement at a time; emits work units/s or a reason it could not measure."""

    measured = Signal(float)
    unavailable = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.process: QProcess | None = None
        self.last_result: dict = {}  # the last measurement's JSON (path, workers)

    def running(self) -> bool:
        return self.process is not None

    def measure(self, resolution: int, batch_size: int, device: str | None = None) -> None:
        if self.process is not None:
            return
        program, *lead = job_client.base_command()
        args = [*lead, *job_client.bench_arguments(resolution, batch_size, BENCH_STEPS)]
        if device and device != "auto":
            args += ["--device", device]
        proc = QProcess(self)
        proc.setProgram(program)
        proc.setArguments(args)
        proc.setWorkingDirectory(str(job_client.repo_root()))
        proc.setProcessEnvironment(job_client.job_environment())
        proc.finished.connect(self._on_finished)
        proc.errorOccurred.connect(self._on_error)
        self.process = proc
        proc.start()

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart and self.process is not None:
            self.process = None
            self.unavailable.emit("the measuring process could not start")

    def _on_finished(self, code: int, _status: QProcess.ExitStatus) -> None:
        proc, self.process = self.process, None
        if proc is None:
            return
        out = bytes(proc.readAllStandardOutput()).decode("utf-8", "replace")
        err = bytes(proc.readAllStandardError()).decode("utf-8", "replace")
        proc.deleteLater()
        speed = parse_bench_output(out) if code == 0 else None
        if speed is not None:
            self.last_result = bench_json(out)
            self.measured.emit(speed)
        elif "invalid choice" in err or ("bench" in err and code == 2):
            self.unavailable.emit("this version has no `bpd bench`")
        else:
            last = err.strip().splitlines()[-1:] or ["no result"]
            self.unavailable.emit(f"the measurement failed ({last[0][:160]})")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.waitForFinished(2000)
