"""What the app knows about one run, built only from its events (no Qt here).

Events of a resumed run are appended to the same events.jsonl; an epoch seen twice
(replayed after a resume) simply overwrites the earlier record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.runs.events import FINAL_FOLD_ID

PHASE_TITLES = {
    "probe": "linear probe",
    "head": "head only",
    "layer4": "layer4 unfrozen",
    "layer3": "layer3 unfrozen",
    "layer2": "layer2 unfrozen",
    "full": "full fine-tuning",
}

PHASE_LABELS = {  # on the plots' phase lines
    "probe": "probe",
    "head": "head",
    "layer4": "+layer4",
    "layer3": "+layer3",
    "layer2": "+layer2",
    "full": "full",
}


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
    done: int | None = None
    total: int | None = None
    eta_s: float | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    traceback: str | None = None
    message: str | None = None
    summary: dict[str, Any] | None = None
    config: dict[str, Any] | None = None  # TrainConfig JSON from run_started
    last_seq: int = -1
    n_events: int = 0

    def apply(self, event: dict[str, Any]) -> None:
        handler = getattr(self, "_on_" + str(event.get("type")), None)
        self.n_events += 1
        if isinstance(event.get("seq"), int):
            self.last_seq = max(self.last_seq, event["seq"])
        if handler is not None:
            handler(event)

    def apply_all(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            self.apply(event)

    def _fold(self, event: dict[str, Any]) -> FoldProgress:
        fold_id = str(event.get("fold_id", "?"))
        if fold_id not in self.folds:
            self.folds[fold_id] = FoldProgress(fold_id)
        return self.folds[fold_id]

    def _on_run_started(self, e: dict[str, Any]) -> None:
        # A resume starts the stream again: the run is live, earlier terminal states are over.
        self.status = "running"
        self.error = self.traceback = self.message = None
        self.run_id = str(e.get("run_id", self.run_id))
        self.n_folds_total = e.get("n_folds_total", self.n_folds_total)
        self.n_patients = e.get("n_patients", self.n_patients)
        if isinstance(e.get("config"), dict):
            self.config = e["config"]

    def _on_fold_started(self, e: dict[str, Any]) -> None:
        self.status = "running"
        self._fold(e)
        self.current_fold = str(e.get("fold_id"))

    def _on_epoch_started(self, e: dict[str, Any]) -> None:
        fold = self._fold(e)
        epoch, phase = int(e.get("epoch", 0)), str(e.get("phase", ""))
        fold.n_epochs = e.get("n_epochs", fold.n_epochs)
        previous = [p for ep, p in sorted(fold.phase_starts.items()) if ep < epoch]
        if not previous or previous[-1] != phase:
            fold.phase_starts[epoch] = phase
        # a replayed epoch after resume: drop batch losses that the replay will redo
        fold.batch_losses = [(x, v) for x, v in fold.batch_losses if x <= epoch]
        self.current_fold, self.current_epoch, self.current_phase = fold.fold_id, epoch, phase

    def _on_batch(self, e: dict[str, Any]) -> None:
        fold = self._fold(e)
        n_batches = max(int(e.get("n_batches") or 1), 1)
        x = int(e.get("epoch", 0)) + (int(e.get("batch", 0)) + 1) / n_batches
        if e.get("loss") is not None:
            fold.batch_losses.append((x, float(e["loss"])))

    def _on_epoch_finished(self, e: dict[str, Any]) -> None:
        fold = self._fold(e)
        epoch = int(e.get("epoch", 0))
        fold.n_epochs = e.get("n_epochs", fold.n_epochs)
        fold.epochs[epoch] = EpochRecord(
            epoch=epoch,
            phase=str(e.get("phase", "")),
            train_loss=_num(e.get("train_loss")),
            test_auroc=_num(e.get("test_auroc")),
            seconds=_num(e.get("seconds")),
        )

    def _on_fold_finished(self, e: dict[str, Any]) -> None:
        fold = self._fold(e)
        fold.metrics = e.get("metrics") or {}
        # The last epoch is scored in the fold's metrics, not per epoch (and with
        # eval_every_epoch off it is the only score): plot it at the fold's last epoch.
        final = _num(fold.metrics.get("auroc"))
        last = max(fold.epochs) if fold.epochs else None
        if final is not None and last is not None and fold.epochs[last].test_auroc is None:
            fold.epochs[last].test_auroc = final

    def _on_progress(self, e: dict[str, Any]) -> None:
        self.done, self.total, self.eta_s = e.get("done"), e.get("total"), _num(e.get("eta_s"))

    def _on_warning(self, e: dict[str, Any]) -> None:
        self.warnings.append(str(e.get("message", "")))

    def _on_run_finished(self, e: dict[str, Any]) -> None:
        self.status, self.summary, self.eta_s = "finished", e.get("summary"), 0.0
        if self.total:
            self.done = self.total

    def _on_run_cancelled(self, e: dict[str, Any]) -> None:
        self.status, self.message = "cancelled", str(e.get("message", "cancelled"))

    def _on_run_failed(self, e: dict[str, Any]) -> None:
        self.status = "failed"
        self.error = str(e.get("error", "the job failed"))
        self.traceback = e.get("traceback")

    # --- derived values for plots and labels -------------------------------------------

    def fraction_done(self) -> float | None:
        if self.done is None or not self.total:
            return None
        return min(max(self.done / self.total, 0.0), 1.0)

    def n_folds_finished(self) -> int:
        # "final" is the --final-model phase: trained on every patient, not a CV fold.
        return sum(
            1 for f in self.folds.values() if f.metrics is not None and f.fold_id != FINAL_FOLD_ID
        )

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


def describe_config(cfg: dict[str, Any] | None) -> str:
    """One line: what this run trains (from its TrainConfig JSON)."""
    if not cfg:
        return ""
    strategy = str(cfg.get("strategy", "?"))
    epochs = str(cfg.get("epochs", "?"))
    if strategy.startswith("probe"):
        epochs = (
            f"{cfg.get('probe_epochs', '?')} probe + {epochs}"
            if "+" in strategy
            else (f"{cfg.get('probe_epochs', '?')} probe")
        )
    cutmix = (cfg.get("cutmix_finetune") or {}).get("enabled")
    parts = [
        f"{cfg.get('init', '?')} init",
        strategy + (" + CutMix" if cutmix else ""),
        f"{cfg.get('cv_folds', '?')} folds × {cfg.get('cv_repeats', '?')}",
        f"{epochs} epochs",
        f"{cfg.get('resolution', '?')} px",
        f"batch {cfg.get('batch_size', '?')}",
    ]
    return " · ".join(parts)


def _num(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def format_duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "unknown"
    seconds = round(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{h} h {m:02d} min"
    if m:
        return f"{m} min {s:02d} s"
    return f"{s} s"
