"""Live training plots (pyqtgraph; GUI thread only).

`RunPlots.show_progress(progress)` redraws from a RunProgress; callers throttle it.
Phase changes (probe, head, layer4, ...) are vertical lines labelled on the x axis.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QVBoxLayout, QWidget

from bpd_gui.jobs.run_progress import PHASE_LABELS, RunProgress

pg.setConfigOptions(antialias=True, background="w", foreground="#333")

FOLD_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
               "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]  # fmt: skip


# Short phase names run up the line from near the bottom, where AUROC curves rarely go.
LABELS_LOW = {"position": 0.04, "color": "#555", "rotateAxis": (1, 0), "anchors": [(0, 0), (0, 0)]}


class PhaseMarkedPlot(pg.PlotWidget):
    """A plot over epochs with labelled vertical lines where the training phase changes."""

    def __init__(
        self, title: str, y_label: str, legend_offset=(-10, 10), labels=LABELS_LOW, parent=None
    ):
        super().__init__(parent=parent)
        self.setTitle(title, size="10pt")
        self.setLabel("bottom", "epochs trained (fold)")
        self.setLabel("left", y_label)
        self.showGrid(x=True, y=True, alpha=0.25)
        self.setMouseEnabled(x=False, y=False)
        self.getAxis("left").enableAutoSIPrefix(False)
        self.addLegend(offset=legend_offset, labelTextSize="8pt")
        self._phase_lines: list[pg.InfiniteLine] = []
        self._marks: list[tuple[int, str]] = []
        self._label_opts = labels

    def set_phase_marks(self, marks: list[tuple[int, str]]) -> None:
        if marks == self._marks:
            return
        self._marks = list(marks)
        for line in self._phase_lines:
            self.removeItem(line)
        self._phase_lines = []
        for epoch, phase in marks:
            line = pg.InfiniteLine(
                pos=epoch,
                angle=90,
                pen=pg.mkPen("#999", style=pg.QtCore.Qt.PenStyle.DashLine),
                label=PHASE_LABELS.get(phase, phase),
                labelOpts=self._label_opts,
            )
            self.addItem(line, ignoreBounds=True)
            self._phase_lines.append(line)


class RunPlots(QWidget):
    """Training loss (per epoch, and batch losses) and test-fold AUROC per epoch."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.loss_plot = PhaseMarkedPlot("Training loss", "BCE loss")
        # low and left of the AUROC curves, just right of the probe line at epoch 0
        self.auroc_plot = PhaseMarkedPlot(
            "Test-fold AUROC", "AUROC", legend_offset=(45, -10), labels=LABELS_LOW
        )
        self.auroc_plot.enableAutoRange(axis="y", enable=False)
        self.auroc_plot.setYRange(0.0, 1.0, padding=0.02)
        self.auroc_plot.addItem(
            pg.InfiniteLine(pos=0.5, angle=0, pen=pg.mkPen("#bbb", width=1)), ignoreBounds=True
        )
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.loss_plot)
        layout.addWidget(self.auroc_plot)
        self._batch_curve = self.loss_plot.plot(
            [], [], pen=pg.mkPen("#9ecae1", width=1), name="batches (current fold)"
        )
        self._epoch_loss_curve = self.loss_plot.plot(
            [], [], pen=pg.mkPen("#08519c", width=2), symbol="o", symbolSize=5,
            symbolBrush="#08519c", name="epoch mean (current fold)",
        )  # fmt: skip
        self._fold_curves: dict[str, pg.PlotDataItem] = {}
        self._mean_curve = self.auroc_plot.plot(
            [], [], pen=pg.mkPen("k", width=3), symbol="s", symbolSize=7, symbolBrush="k",
            name="mean across folds",
        )  # fmt: skip

    def clear(self) -> None:
        self.show_progress(RunProgress())

    def show_progress(self, progress: RunProgress) -> None:
        # the fold in training; one that has only just started shows the previous fold's
        with_data = [f for f in progress.folds.values() if f.epochs or f.batch_losses]
        fold = progress.folds.get(progress.current_fold or "")
        if fold is None or not (fold.epochs or fold.batch_losses):
            fold = with_data[-1] if with_data else fold
        if fold is not None:
            self._batch_curve.setData(
                [x for x, _ in fold.batch_losses], [y for _, y in fold.batch_losses]
            )
            recs = [r for _, r in sorted(fold.epochs.items()) if r.train_loss is not None]
            # an epoch's mean loss sits at the end of that epoch, where its batches end
            xs, ys = [r.epoch + 1 for r in recs], [r.train_loss for r in recs]
            self._epoch_loss_curve.setData(xs, ys)
            self.loss_plot.setTitle(f"Training loss — fold {fold.fold_id}", size="10pt")
        else:
            self._batch_curve.setData([], [])
            self._epoch_loss_curve.setData([], [])
            self.loss_plot.setTitle("Training loss", size="10pt")
        self._show_aurocs(progress)
        n_epochs = max((f.n_epochs or 0 for f in progress.folds.values()), default=0)
        for plot in (self.loss_plot, self.auroc_plot):
            if n_epochs:  # the whole fold from the start, so phases and progress read at a glance
                plot.enableAutoRange(axis="x", enable=False)
                plot.setXRange(0, n_epochs, padding=0.02)
            else:
                plot.enableAutoRange(axis="x", enable=True)
        # phase lines of the fold on show (the one in training, or the last with data)
        marks = sorted(fold.phase_starts.items()) if fold is not None else []
        self.loss_plot.set_phase_marks(marks)
        self.auroc_plot.set_phase_marks(marks)

    def _show_aurocs(self, progress: RunProgress) -> None:
        for fold_id in list(self._fold_curves):
            if fold_id not in progress.folds:
                self.auroc_plot.removeItem(self._fold_curves.pop(fold_id))
        for i, (fold_id, fold) in enumerate(progress.folds.items()):
            recs = [r for _, r in sorted(fold.epochs.items()) if r.test_auroc is not None]
            curve = self._fold_curves.get(fold_id)
            if curve is None:
                color = FOLD_COLORS[i % len(FOLD_COLORS)]
                curve = self.auroc_plot.plot(
                    [], [], pen=pg.mkPen(color, width=1), symbol="o", symbolSize=4,
                    symbolBrush=color, symbolPen=None,
                    name=f"fold {fold_id}" if len(progress.folds) <= 6 else None,
                )  # fmt: skip
                self._fold_curves[fold_id] = curve
            curve.setData([r.epoch + 1 for r in recs], [r.test_auroc for r in recs])
        per_epoch = (progress.config or {}).get("eval_every_epoch", True)
        self.auroc_plot.setTitle(
            "Test-fold AUROC" + ("" if per_epoch else " — each fold scored after its last epoch"),
            size="10pt",
        )
        mean = progress.mean_auroc_by_epoch()
        self._mean_curve.setData([ep + 1 for ep, _, _ in mean], [m for _, m, _ in mean])

    def point_counts(self) -> dict[str, int]:
        """Number of plotted points per curve (used by tests and the status bar)."""
        counts = {
            "batches": len(self._batch_curve.xData if self._batch_curve.xData is not None else []),
            "epoch_loss": _n(self._epoch_loss_curve),
            "auroc_mean": _n(self._mean_curve),
        }
        counts.update({f"auroc_{k}": _n(c) for k, c in self._fold_curves.items()})
        return counts


def _n(curve: pg.PlotDataItem) -> int:
    return 0 if curve.xData is None else len(curve.xData)
