"""How long a run will take, from a quick measured training step.

Runs `bpd bench train --resolution N --batch-size B --steps S` as a child process (its
last line is JSON {"images_per_s": ...}). Where that command does not exist, or fails,
the estimate waits for the run's first epoch instead and says so.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from PySide6.QtCore import QObject, QProcess, Signal

from bpd_gui.jobs import job_client

BENCH_STEPS = 3
# Scoring a test image costs about a third of a training step (forward only).
EVAL_COST = 1 / 3


@dataclass(frozen=True)
class RunShape:
    n_images: int
    n_patients: int
    folds: int
    repeats: int
    epochs: int  # fine-tuning epochs
    probe_epochs: int  # 0 without a probe
    eval_every_epoch: bool


def images_processed(shape: RunShape) -> float:
    """Training-step equivalents over the whole run (test scoring weighted by EVAL_COST)."""
    k = max(shape.folds, 2)
    train_imgs = shape.n_images * (k - 1) / k
    test_imgs = shape.n_patients / k
    evals = shape.epochs if shape.eval_every_epoch else 1
    # the probe trains the head on features computed once per image: ~one forward pass
    probe = shape.n_images * EVAL_COST if shape.probe_epochs else 0.0
    per_fold = train_imgs * shape.epochs + probe + test_imgs * evals * EVAL_COST
    return per_fold * k * shape.repeats


def estimate_seconds(shape: RunShape, images_per_s: float) -> float:
    return images_processed(shape) / max(images_per_s, 1e-9)


def estimate_from_epoch(shape: RunShape, epoch_seconds: float) -> float:
    """From the first fine-tuning epoch's measured time (the fallback)."""
    return epoch_seconds * shape.epochs * max(shape.folds, 2) * shape.repeats * (1 + EVAL_COST)


def parse_bench_output(text: str) -> float | None:
    for line in reversed([ln.strip() for ln in text.splitlines() if ln.strip()]):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        value = data.get("images_per_s") if isinstance(data, dict) else None
        if isinstance(value, int | float) and math.isfinite(value) and value > 0:
            return float(value)
        return None
    return None


class BenchRunner(QObject):
    """One measurement at a time; emits images/s or a reason it could not measure."""

    measured = Signal(float)
    unavailable = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.process: QProcess | None = None

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
