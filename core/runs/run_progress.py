"""What is known about one run, built only from its typed events (core.runs.events).

One reducer for every client: the CLI's progress printer (core.cli.train_cmd) and the
app's live plots read the same state. Events of a resumed run are appended to the same
events.jsonl; an epoch seen twice (replayed after a resume) overwrites the earlier record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.runs import events as ev


@dataclass
class EpochRecord:
    epoch: int
    phase: str
    train_loss: float | None
    test_auroc: float | None
    seconds: float | None


@dataclass
class FoldProgress:
    fold_id: str
    epochs: dict[int, EpochRecord] = field(default_factory=dict)
    batch_losses: list[tuple[float, float]] = field(default_factory=list)  # (x in epochs, loss)
    phase_starts: dict[int, str] = field(default_factory=dict)  # epoch -> phase
    n_epochs: int | None = None
    metrics: dict[str, Any] | None = None

    @property
    def is_final_model(self) -> bool:
        return self.fold_id == ev.FINAL_FOLD_ID


@dataclass
class RunProgress:
    """Accumulates a run's events. `status`: waiting, running, finished, cancelled, failed."""

    status: str = "waiting"
    run_id: str = ""
    n_folds_total: int | None = None
    n_patients: int | None = None
    folds: dict[str, FoldProgress] = field(default_factory=dict)
    current_fold: str | None = None
    current_epoch: int | None = None
    current_phase: str | None = None
    done: float | None = None
    total: float | None = None
    eta_s: float | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    traceback: str | None = None
    message: str | None = None
    summary: dict[str, Any] | None = None
    config: dict[str, Any] | None = None  # TrainConfig JSON from run_started
    last_seq: int = -1
    n_events: int = 0
    last_event: ev.Event | None = None

    def apply(self, event: ev.Event) -> None:
        self.n_events += 1
        self.last_seq = max(self.last_seq, event.seq)
        self.last_event = event
        handler = getattr(self, "_on_" + event.type, None)
        if handler is not None and not isinstance(event, ev.UnknownEvent):
            handler(event)

    def apply_all(self, events: list[ev.Event]) -> None:
        for event in events:
            self.apply(event)

    def _fold(self, fold_id: str) -> FoldProgress:
        if fold_id not in self.folds:
            self.folds[fold_id] = FoldProgress(fold_id)
        return self.folds[fold_id]

    def _on_run_started(self, e: ev.RunStarted) -> None:
        # A resume starts the stream again: the run is live, earlier terminal states are over.
        self.status = "running"
        self.error = self.traceback = self.message = None
        self.run_id = e.run_id
        self.n_folds_total = e.n_folds_total
        self.n_patients = e.n_patients
        self.config = e.config or self.config

    def _on_fold_started(self, e: ev.FoldStarted) -> None:
        self.status = "running"
        self._fold(e.fold_id)
        self.current_fold = e.fold_id

    def _on_epoch_started(self, e: ev.EpochStarted) -> None:
        fold = self._fold(e.fold_id)
        fold.n_epochs = e.n_epochs
        previous = [p for ep, p in sorted(fold.phase_starts.items()) if ep < e.epoch]
        if not previous or previous[-1] != e.phase:
            fold.phase_starts[e.epoch] = e.phase
        # a replayed epoch after resume: drop batch losses that the replay will redo
        fold.batch_losses = [(x, v) for x, v in fold.batch_losses if x <= e.epoch]
        self.current_fold, self.current_epoch, self.current_phase = e.fold_id, e.epoch, e.phase

    def _on_batch(self, e: ev.BatchLoss) -> None:
        x = e.epoch + (e.batch + 1) / max(e.n_batches, 1)
        self._fold(e.fold_id).batch_losses.append((x, float(e.loss)))

    def _on_epoch_finished(self, e: ev.EpochFinished) -> None:
        fold = self._fold(e.fold_id)
        fold.n_epochs = e.n_epochs
        fold.epochs[e.epoch] = EpochRecord(e.epoch, e.phase, e.train_loss, e.test_auroc, e.seconds)

    def _on_fold_finished(self, e: ev.FoldFinished) -> None:
        fold = self._fold(e.fold_id)
        fold.metrics = dict(e.metrics)
        # The last epoch is scored in the fold's metrics, not per epoch (and with
        # eval_every_epoch off it is the only score): plot it at the fold's last epoch.
        final = fold.metrics.get("auroc")
        last = max(fold.epochs) if fold.epochs else None
        if final is not None and last is not None and fold.epochs[last].test_auroc is None:
            fold.epochs[last].test_auroc = float(final)

    def _on_progress(self, e: ev.ProgressUpdate) -> None:
        self.done, self.total, self.eta_s = e.done, e.total, e.eta_s

    def _on_warning(self, e: ev.RunWarning) -> None:
        self.warnings.append(e.message)

    def _on_run_finished(self, e: ev.RunFinished) -> None:
        self.status, self.summary, self.eta_s = "finished", e.summary, 0.0
        if self.total:
            self.done = self.total

    def _on_run_cancelled(self, e: ev.RunCancelled) -> None:
        self.status, self.message = "cancelled", e.message

    def _on_run_failed(self, e: ev.RunFailed) -> None:
        self.status, self.error, self.traceback = "failed", e.error, e.traceback

    # --- derived values for progress lines, plots and labels ---------------------------

    def fraction_done(self) -> float | None:
        if self.done is None or not self.total:
            return None
        return min(max(self.done / self.total, 0.0), 1.0)

    def n_folds_finished(self) -> int:
        # FINAL_FOLD_ID is the --final-model phase: trained on every patient, not a CV fold.
        return sum(1 for f in self.folds.values() if f.metrics is not None and not f.is_final_model)

    def current_step(self) -> str:
        """"r0-f1 epoch 3/48 layer4": where the run is now ("" before the first epoch)."""
        fold = self.folds.get(self.current_fold or "")
        if fold is None or self.current_epoch is None:
            return ""
        n = f"/{fold.n_epochs}" if fold.n_epochs else ""
        return f"{fold.fold_id} epoch {self.current_epoch + 1}{n} {self.current_phase}"

    def mean_auroc_by_epoch(self) -> list[tuple[int, float, int]]:
        """Running mean across folds: (epoch, mean test AUROC, number of folds in it)."""
        by_epoch: dict[int, list[float]] = {}
        for fold in self.folds.values():
            for rec in fold.epochs.values():
                if rec.test_auroc is not None:
                    by_epoch.setdefault(rec.epoch, []).append(rec.test_auroc)
        return [(ep, sum(v) / len(v), len(v)) for ep, v in sorted(by_epoch.items())]

    def phase_marks(self) -> list[tuple[int, str]]:
        """Where phases change, from the fold being trained (else the first fold)."""
        fold = self.folds.get(self.current_fold or "") or next(iter(self.folds.values()), None)
        return sorted(fold.phase_starts.items()) if fold else []
