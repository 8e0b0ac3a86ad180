"""Writes a run's events.jsonl in the real schema (core.runs.events.EventLog), step by step,
as the training engine does, so tests can drive the app's following and plotting."""

from __future__ import annotations

import sys
from pathlib import Path

from core.runs.events import EventLog

# A live process whose command line looks like a `bpd train` job (the app checks that
# a pid from state.json still runs a job before reattaching).
SLEEPING_JOB = [sys.executable, "-c", "import time; time.sleep(60)", "core.cli.main", "train"]


class FakeRunWriter:
    def __init__(self, run_dir: Path, folds=("r0-f0", "r0-f1"), n_epochs=4, n_batches=3):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log = EventLog(self.run_dir / "events.jsonl")
        self.folds, self.n_epochs, self.n_batches = list(folds), n_epochs, n_batches
        self.steps = list(self._steps())

    def phase(self, epoch: int) -> str:
        return "probe" if epoch < 2 else "layer4"

    def _steps(self):
        total = len(self.folds) * self.n_epochs * self.n_batches
        yield ("run_started", dict(run_id=self.run_dir.name, run_dir=str(self.run_dir),
               n_folds_total=len(self.folds), n_patients=20, n_positive=10, config={}))  # fmt: skip
        done = 0
        for f, fold_id in enumerate(self.folds):
            yield ("fold_started", dict(fold_id=fold_id, repeat=0, fold=f, n_train=16, n_test=4))
            for ep in range(self.n_epochs):
                ph = self.phase(ep)
                started = dict(fold_id=fold_id, epoch=ep, n_epochs=self.n_epochs, phase=ph)
                yield ("epoch_started", started)
                for b in range(self.n_batches):
                    done += 1
                    loss = 0.7 - 0.05 * ep - 0.01 * b
                    yield ("batch", dict(fold_id=fold_id, epoch=ep, batch=b,
                                         n_batches=self.n_batches, loss=loss))  # fmt: skip
                    yield ("progress", dict(done=done, total=total, eta_s=float(total - done)))
                yield ("epoch_finished", dict(
                    fold_id=fold_id, epoch=ep, n_epochs=self.n_epochs, phase=ph,
                    train_loss=0.69 - 0.05 * ep, test_auroc=min(0.5 + 0.05 * ep + 0.02 * f, 1.0),
                    lrs={"head": 1e-3}, seconds=0.5))  # fmt: skip
            yield ("fold_finished", dict(fold_id=fold_id, metrics={"auroc": 0.7 + 0.02 * f}))
        yield ("run_finished", dict(summary={
            "auroc": {"mean": 0.71, "sd": 0.014, "n": 2},
            "balanced_accuracy": {"mean": 0.65, "sd": 0.05, "n": 2},
            "f1": {"mean": 0.6, "sd": 0.1, "n": 2},
            "pooled_auroc": 0.7, "n_patients": 20, "n_positive": 10, "n_folds": 2}))  # fmt: skip

    def write(self, n: int | None = None) -> bool:
        """Emit the next n events (all if None); False when nothing is left."""
        count = len(self.steps) if n is None else n
        for _ in range(count):
            if not self.steps:
                return False
            type_, fields = self.steps.pop(0)
            self.log.emit(type_, **fields)
        return bool(self.steps)

    def write_until(self, type_: str) -> None:
        while self.steps and self.steps[0][0] != type_:
            self.write(1)
        self.write(1)
