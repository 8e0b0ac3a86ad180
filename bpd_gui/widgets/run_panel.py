"""The selected run: status, progress bar with ETA, errors and warnings, live plots."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QVBoxLayout,
    QWidget,
)

from bpd_gui.jobs.run_job import RunJob
from bpd_gui.jobs.run_progress import (
    PHASE_TITLES,
    RunProgress,
    describe_config,
    format_duration,
)
from bpd_gui.widgets.plots import RunPlots


class RunPanel(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.title = QLabel("No run selected. Start one, or pick one from the list.")
        self.title.setObjectName("run_title")
        self.title.setWordWrap(True)
        self.status = QLabel()
        self.status.setObjectName("run_status")
        self.status.setWordWrap(True)
        self.progress_bar = QProgressBar()
        self.progress_bar.setObjectName("run_progress")
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setTextVisible(False)
        self.eta = QLabel()
        self.eta.setObjectName("run_eta")
        self.error = QPlainTextEdit()
        self.error.setObjectName("run_error")
        self.error.setReadOnly(True)
        self.error.setMaximumHeight(140)
        self.error.hide()
        self.plots = RunPlots()
        bar = QHBoxLayout()
        bar.addWidget(self.progress_bar, 1)
        bar.addWidget(self.eta)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.status)
        layout.addLayout(bar)
        layout.addWidget(self.error)
        layout.addWidget(self.plots, 1)

    def show_job(self, job: RunJob | None) -> None:
        if job is None:
            self.title.setText("No run selected. Start one, or pick one from the list.")
            self.status.setText("")
            self.eta.setText("")
            self._set_bar(None)
            self.error.hide()
            self.plots.clear()
            return
        p = job.progress
        settings = describe_config(p.config)
        self.title.setText(
            f"<b>{job.name}</b> — {job.status_text()}"
            + (f"<br><span style='color:#555'>{settings}</span>" if settings else "")
        )
        self.title.setToolTip(str(job.run_dir))
        self.status.setText(self._status_line(job, p))
        self._set_bar(p.fraction_done() or 0.0)
        self.eta.setText(self._eta_text(job, p))
        problem = p.error or ""
        if p.traceback and p.traceback not in problem:
            problem += "\n\n" + p.traceback
        self.error.setPlainText(problem.strip())
        self.error.setVisible(bool(problem.strip()))
        self.plots.show_progress(p)

    def _set_bar(self, fraction: float | None) -> None:
        # Only on change: QProgressBar repaints synchronously when its value or text changes.
        value = -1 if fraction is None else int(fraction * 1000)
        if value == self.progress_bar.value() and self.progress_bar.isTextVisible() == (value >= 0):
            return
        self.progress_bar.setTextVisible(value >= 0)
        self.progress_bar.setFormat(f"{max(value, 0) / 10:.0f}%")
        self.progress_bar.setValue(max(value, 0))

    @staticmethod
    def _status_line(job: RunJob, p: RunProgress) -> str:
        parts = []
        if p.n_folds_total:
            parts.append(f"fold {p.n_folds_finished()}/{p.n_folds_total} done")
        starting = startup_step(job, p)
        if starting:
            return " · ".join([*parts, starting])
        if p.current_fold and job.is_active:
            fold = p.folds.get(p.current_fold)
            n_ep = fold.n_epochs if fold else None
            ep = (p.current_epoch or 0) + 1
            parts.append(f"training {p.current_fold}, epoch {ep}/{n_ep or '?'}")
        if p.current_phase and job.is_active:
            parts.append(PHASE_TITLES.get(p.current_phase, p.current_phase))
        auroc = (p.summary or {}).get("auroc")
        if isinstance(auroc, dict) and auroc.get("mean") is not None:
            parts.append(f"AUROC {auroc['mean']:.3f} ± {auroc.get('sd') or 0:.3f} over folds")
        if p.status == "cancelled":
            parts.append("cancelled — Resume continues from the last checkpoint")
        if p.status == "failed":
            parts.append("failed — fix the cause below, then Resume")
        if p.warnings:
            parts.append(f"{len(p.warnings)} warning(s): {p.warnings[-1]}")
        return " · ".join(parts)

    @staticmethod
    def _eta_text(job: RunJob, p: RunProgress) -> str:
        if not job.is_active:
            return ""
        if p.eta_s is not None:
            return f"about {format_duration(p.eta_s)} left"
        # no ETA from the job yet: extrapolate from the first measured epoch
        fold = p.folds.get(p.current_fold or "")
        secs = [r.seconds for r in (fold.epochs.values() if fold else []) if r.seconds]
        if fold and secs and fold.n_epochs and p.n_folds_total:
            per_fold = sum(secs) / len(secs) * fold.n_epochs
            left = per_fold * (p.n_folds_total - p.n_folds_finished()) - sum(secs)
            return f"about {format_duration(left)} left (from the first epoch's time)"
        return "estimating…"


def startup_step(job: RunJob, p: RunProgress) -> str:
    """What an active run is doing before its first batch, from the events so far (the
    first ~20 s of a run otherwise show nothing): starting the process and reading the
    images, splitting folds, building the model, caching the probe's features."""
    if not job.is_active or p.status not in ("running", "waiting"):
        return ""
    cfg = p.config or {}
    if p.n_folds_total is None:  # no run_started yet: the process imports and reads
        return ("Starting: loading PyTorch, then reading and resizing every image of the "
                "cohort (the first run at a resolution takes longest)…")  # fmt: skip
    fold = p.folds.get(p.current_fold or "")
    if fold is None:
        return f"Images ready for {p.n_patients} patients; splitting them into folds…"
    if p.current_epoch is None or p.current_fold != fold.fold_id or not fold.phase_starts:
        youden = cfg.get("threshold_method") == "youden"
        return (f"{fold.fold_id}: building the model"
                + (" and choosing its threshold by inner cross-validation on its training "
                   "patients" if youden else "") + "…")  # fmt: skip
    first_probe = p.current_phase == "probe" and p.current_epoch == 0
    if first_probe and not fold.epochs and not fold.batch_losses:
        return (
            f"{fold.fold_id}: computing every image's backbone features once for the "
            "linear probe (its epochs then take milliseconds)…"
        )
    return ""
