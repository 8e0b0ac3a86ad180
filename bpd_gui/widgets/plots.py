"""Live training plots (pyqtgraph; GUI thread only).

`RunPlots.show_progress(progress)` redraws from a RunProgress; callers throttle it.
Phase changes (probe, head, layer4, ...) are vertical lines labelled on the x axis.
A cached linear probe (40 epochs of milliseconds in cpu-fast) is squeezed into the
first part of the x axis so fine-tuning, where the time goes, keeps the room; a fold
picker shows any fold's loss (by default the one in training).
"""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from bpd_gui.jobs.run_progress import PHASE_LABELS, FoldProgress, RunProgress

pg.setConfigOptions(antialias=True, background="w", foreground="#333")

FOLD_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
               "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]  # fmt: skip
FOLLOW = "following the run"  # the fold picker's first entry
PROBE_SHARE = 0.2  # at most this share of the x axis for the probe's epochs
# legends, in the plot titles
LOSS_KEY = ("&nbsp;&nbsp;<span style='color:#6baed6'>━ batches</span>&nbsp; "
            "<span style='color:#08519c'>●━ epoch mean</span>")  # fmt: skip
AUROC_KEY = ("&nbsp;&nbsp;<span style='color:#777'>━ folds</span>&nbsp; "
             "<b>■━ mean</b>")  # fmt: skip


# Short phase names run up the line from near the bottom, where AUROC curves rarely go.
LABELS_LOW = {"position": 0.04, "color": "#555", "rotateAxis": (1, 0), "anchors": [(0, 0), (0, 0)]}


class EpochScale:
    """x position of an epoch count: the probe's epochs share at most PROBE_SHARE of
    the axis, fine-tuning epochs are one unit each. Ticks keep the true epoch numbers."""

    def __init__(self, n_probe: int = 0, n_total: int = 0):
        self.n_probe, self.n_total = n_probe, n_total
        n_ft = n_total - n_probe
        fair = n_ft * PROBE_SHARE / (1 - PROBE_SHARE)
        self.probe_width = min(float(n_probe), max(1.0, fair)) if n_probe and n_ft > 0 else n_probe

    @property
    def squeezed(self) -> bool:
        return self.probe_width < self.n_probe

    def x(self, epochs: float) -> float:
        if not self.squeezed or epochs >= self.n_probe:
            return epochs - self.n_probe + self.probe_width
        return epochs * self.probe_width / self.n_probe

    def xs(self, values: list[float]) -> list[float]:
        return [self.x(v) for v in values]

    @property
    def width(self) -> float:
        return self.x(self.n_total)

    def ticks(self) -> list[tuple[float, str]]:
        if not self.squeezed:
            return []  # pyqtgraph's own ticks
        n_ft = self.n_total - self.n_probe
        step = max(1, round(n_ft / 8))
        marks = [(0.0, "0"), (self.x(self.n_probe), str(self.n_probe))]
        marks += [(self.x(e), str(e)) for e in range(self.n_probe + step, self.n_total + 1, step)]
        return marks


def fold_scale(fold: FoldProgress | None, config: dict[str, Any] | None) -> EpochScale:
    """The probe's length from the fold's phase starts (else from the recipe)."""
    if fold is None or not fold.n_epochs:
        return EpochScale()
    starts = sorted(fold.phase_starts.items())
    after_probe = [ep for ep, phase in starts if phase != "probe"]
    if starts and starts[0][1] == "probe" and after_probe:
        n_probe = after_probe[0]
    else:
        cfg = config or {}
        uses_probe = str(cfg.get("strategy", "")).startswith("probe")
        n_probe = int(cfg.get("probe_epochs") or 0) if uses_probe else 0
    return EpochScale(min(n_probe, fold.n_epochs), fold.n_epochs)


class PhaseMarkedPlot(pg.PlotWidget):
    """A plot over epochs with labelled vertical lines where the training phase changes."""

    def __init__(self, title: str, y_label: str, labels=LABELS_LOW, parent=None):
        super().__init__(parent=parent)
        self.setTitle(title, size="10pt")
        self.setLabel("bottom", "epochs trained (fold)")
        self.setLabel("left", y_label)
        self.showGrid(x=True, y=True, alpha=0.25)
        self.setMouseEnabled(x=False, y=False)
        self.getAxis("left").enableAutoSIPrefix(False)
        self._phase_lines: list[pg.InfiniteLine] = []
        self._marks: list[tuple[int, str]] = []
        self._label_opts = labels
        self._ticks: list[tuple[float, str]] | None = None

    def set_scale(self, scale: EpochScale) -> None:
        ticks = scale.ticks()
        if ticks == self._ticks:
            return
        self._ticks = ticks
        axis = self.getAxis("bottom")
        axis.setTicks([ticks] if ticks else None)
        self.setLabel(
            "bottom",
            f"epochs trained (fold) — the {scale.n_probe} probe epochs squeezed"
            if scale.squeezed
            else "epochs trained (fold)",
        )

    def set_phase_marks(self, marks: list[tuple[int, str]], scale: EpochScale) -> None:
        """marks: (epoch where a phase starts, phase), placed on the axis by `scale`."""
        placed = [(scale.x(ep), phase) for ep, phase in marks]
        if marks == self._marks and [ln.value() for ln in self._phase_lines] == [
            x for x, _ in placed
        ]:
            return
        self._marks = list(marks)
        for line in self._phase_lines:
            self.removeItem(line)
        self._phase_lines = []
        for x, phase in placed:
            line = pg.InfiniteLine(
                pos=x,
                angle=90,
                pen=pg.mkPen("#999", style=pg.QtCore.Qt.PenStyle.DashLine),
                label=PHASE_LABELS.get(phase, phase),
                labelOpts=self._label_opts,
            )
            self.addItem(line, ignoreBounds=True)
            self._phase_lines.append(line)


class RunPlots(QWidget):
    """Training loss of one fold (epoch means and batch losses) and every fold's
    test-fold AUROC per epoch with their mean."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.fold_picker = QComboBox()
        self.fold_picker.setObjectName("fold_picker")
        self.fold_picker.setToolTip("The fold whose loss is shown (and drawn thicker below)")
        self.fold_picker.addItem(FOLLOW)
        self.fold_picker.currentTextChanged.connect(lambda _t: self._redraw())
        # the legends are in the titles: inside the plot they covered curves at 1024 x 700
        self.loss_plot = PhaseMarkedPlot("Training loss", "BCE loss")
        self.auroc_plot = PhaseMarkedPlot("Test-fold AUROC", "AUROC")
        self.auroc_plot.enableAutoRange(axis="y", enable=False)
        self.auroc_plot.setYRange(0.0, 1.0, padding=0.02)
        self.auroc_plot.addItem(
            pg.InfiniteLine(pos=0.5, angle=0, pen=pg.mkPen("#bbb", width=1)), ignoreBounds=True
        )
        picker_row = QHBoxLayout()
        picker_row.addWidget(QLabel("Loss of fold:"))
        picker_row.addWidget(self.fold_picker)
        picker_row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(picker_row)
        layout.addWidget(self.loss_plot)
        layout.addWidget(self.auroc_plot)
        self._batch_curve = self.loss_plot.plot([], [], pen=pg.mkPen("#9ecae1", width=1))
        self._epoch_loss_curve = self.loss_plot.plot(
            [], [], pen=pg.mkPen("#08519c", width=2), symbol="o", symbolSize=5,
            symbolBrush="#08519c",
        )  # fmt: skip
        self._fold_curves: dict[str, pg.PlotDataItem] = {}
        self._mean_curve = self.auroc_plot.plot(
            [], [], pen=pg.mkPen("k", width=3), symbol="s", symbolSize=7, symbolBrush="k"
        )
        self._progress = RunProgress()
        self.shown_fold: str | None = None

    def clear(self) -> None:
        self.show_progress(RunProgress())

    def show_progress(self, progress: RunProgress) -> None:
        self._progress = progress
        self._update_picker(progress)
        self._redraw()

    def _update_picker(self, progress: RunProgress) -> None:
        ids = [f for f in progress.folds if progress.folds[f].epochs or progress.folds[f].n_epochs]
        have = [self.fold_picker.itemText(i) for i in range(1, self.fold_picker.count())]
        if ids == have:
            return
        chosen = self.fold_picker.currentText()
        self.fold_picker.blockSignals(True)
        self.fold_picker.clear()
        self.fold_picker.addItems([FOLLOW, *ids])
        self.fold_picker.setCurrentText(chosen if chosen in ids else FOLLOW)
        self.fold_picker.blockSignals(False)

    def _fold_on_show(self, progress: RunProgress) -> FoldProgress | None:
        chosen = self.fold_picker.currentText()
        if chosen != FOLLOW and chosen in progress.folds:
            return progress.folds[chosen]
        # the fold in training; one that has only just started shows the previous fold's
        with_data = [f for f in progress.folds.values() if f.epochs or f.batch_losses]
        fold = progress.folds.get(progress.current_fold or "")
        if fold is None or not (fold.epochs or fold.batch_losses):
            fold = with_data[-1] if with_data else fold
        return fold

    def _redraw(self) -> None:
        progress = self._progress
        fold = self._fold_on_show(progress)
        self.shown_fold = fold.fold_id if fold is not None else None
        scale = fold_scale(fold, progress.config)
        if fold is None:  # before any fold: the longest fold's epochs
            longest = max(progress.folds.values(), key=lambda f: f.n_epochs or 0, default=None)
            scale = fold_scale(longest, progress.config)
        if fold is not None:
            self._batch_curve.setData(
                scale.xs([x for x, _ in fold.batch_losses]), [y for _, y in fold.batch_losses]
            )
            recs = [r for _, r in sorted(fold.epochs.items()) if r.train_loss is not None]
            # an epoch's mean loss sits at the end of that epoch, where its batches end
            self._epoch_loss_curve.setData(
                scale.xs([r.epoch + 1 for r in recs]), [r.train_loss for r in recs]
            )
            self.loss_plot.setTitle(f"Training loss — fold {fold.fold_id}{LOSS_KEY}", size="10pt")
        else:
            self._batch_curve.setData([], [])
            self._epoch_loss_curve.setData([], [])
            self.loss_plot.setTitle("Training loss", size="10pt")
        self._show_aurocs(progress, scale)
        for plot in (self.loss_plot, self.auroc_plot):
            plot.set_scale(scale)
            if scale.n_total:  # the whole fold from the start: phases and progress at a glance
                plot.enableAutoRange(axis="x", enable=False)
                plot.setXRange(0, scale.width, padding=0.02)
            else:
                plot.enableAutoRange(axis="x", enable=True)
        # phase lines of the fold on show
        marks = sorted(fold.phase_starts.items()) if fold is not None else []
        self.loss_plot.set_phase_marks(marks, scale)
        self.auroc_plot.set_phase_marks(marks, scale)

    def _show_aurocs(self, progress: RunProgress, scale: EpochScale) -> None:
        for fold_id in list(self._fold_curves):
            if fold_id not in progress.folds:
                self.auroc_plot.removeItem(self._fold_curves.pop(fold_id))
        for i, (fold_id, fold) in enumerate(progress.folds.items()):
            recs = [r for _, r in sorted(fold.epochs.items()) if r.test_auroc is not None]
            color = FOLD_COLORS[i % len(FOLD_COLORS)]
            curve = self._fold_curves.get(fold_id)
            if curve is None:
                curve = self.auroc_plot.plot(
                    [], [], symbol="o", symbolSize=4, symbolBrush=color, symbolPen=None
                )
                self._fold_curves[fold_id] = curve
            width = 2.5 if fold_id == self.shown_fold else 1
            curve.setPen(pg.mkPen(color, width=width))
            curve.setData(scale.xs([r.epoch + 1 for r in recs]), [r.test_auroc for r in recs])
        per_epoch = (progress.config or {}).get("eval_every_epoch", True)
        self.auroc_plot.setTitle(
            "Test-fold AUROC"
            + ("" if per_epoch else " — each fold scored after its last epoch")
            + AUROC_KEY,
            size="10pt",
        )
        mean = progress.mean_auroc_by_epoch()
        self._mean_curve.setData(scale.xs([ep + 1 for ep, _, _ in mean]), [m for _, m, _ in mean])

    def point_counts(self) -> dict[str, int]:
        """Number of plotted points per curve (used by tests and the status bar)."""
        counts = {
            "batches": _n(self._batch_curve),
            "epoch_loss": _n(self._epoch_loss_curve),
            "auroc_mean": _n(self._mean_curve),
        }
        counts.update({f"auroc_{k}": _n(c) for k, c in self._fold_curves.items()})
        return counts


def _n(curve: pg.PlotDataItem) -> int:
    return 0 if curve.xData is None else len(curve.xData)
