"""A finished run's ROC, precision-recall and calibration plots (pyqtgraph, GUI thread).

They draw a core.evaluation.run_results.RunResults; nothing is computed here.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QHBoxLayout, QWidget

from bpd_gui.widgets.plots import FOLD_COLORS
from core.evaluation.run_results import RunResults

FOLD_ALPHA = 90  # single folds: thin and pale, the pooled curve on top


def _plot(title: str, x_label: str, y_label: str, legend_offset=(-10, -10)) -> pg.PlotWidget:
    plot = pg.PlotWidget()
    plot.setTitle(title, size="10pt")
    plot.setLabel("bottom", x_label)
    plot.setLabel("left", y_label)
    plot.showGrid(x=True, y=True, alpha=0.25)
    plot.setMouseEnabled(x=False, y=False)
    plot.setXRange(0, 1, padding=0.02)
    plot.setYRange(0, 1, padding=0.02)
    plot.setAspectLocked(False)
    plot.getAxis("left").enableAutoSIPrefix(False)
    plot.addLegend(offset=legend_offset, labelTextSize="8pt")  # default: bottom right
    return plot


def _fold_pen(i: int) -> pg.QtGui.QPen:
    color = pg.mkColor(FOLD_COLORS[i % len(FOLD_COLORS)])
    color.setAlpha(FOLD_ALPHA)
    return pg.mkPen(color, width=1)


class ResultPlots(QWidget):
    """ROC, precision-recall and calibration side by side."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.roc = _plot("ROC (out-of-fold)", "1 − specificity", "sensitivity")
        # legend top right: precision falls away towards full recall
        self.pr = _plot("Precision-recall (out-of-fold)", "recall (sensitivity)", "precision",
                        legend_offset=(-10, 10))  # fmt: skip
        self.calibration = _plot("Calibration", "mean predicted probability", "observed positive")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for p in (self.roc, self.pr, self.calibration):
            layout.addWidget(p)

    def clear(self) -> None:
        for p in (self.roc, self.pr, self.calibration):
            p.clear()

    def show_results(self, r: RunResults) -> None:
        self.clear()
        dash = pg.mkPen("#aaa", style=pg.QtCore.Qt.PenStyle.DashLine)
        self.roc.plot([0, 1], [0, 1], pen=dash)
        self.calibration.plot([0, 1], [0, 1], pen=dash, name="perfect")
        for i, c in enumerate(r.roc_folds):
            self.roc.plot(c.x, c.y, pen=_fold_pen(i), name="single folds" if i == 0 else None)
        for i, c in enumerate(r.pr_folds):
            self.pr.plot(c.x, c.y, pen=_fold_pen(i), name="single folds" if i == 0 else None)
        auroc = next((m for m in r.metrics if m.key == "auroc"), None)
        if r.roc is not None:
            label = "pooled"
            if auroc is not None and auroc.pooled is not None:
                label = f"pooled, AUROC {auroc.pooled:.3f}"
            self.roc.plot(r.roc.x, r.roc.y, pen=pg.mkPen("k", width=2.5), name=label)
        if r.pr is not None:
            ap = f"pooled, AP {r.average_precision:.3f}" if r.average_precision else "pooled"
            self.pr.plot(r.pr.x, r.pr.y, pen=pg.mkPen("k", width=2.5), name=ap)
        if r.prevalence is not None:  # a useless score's precision
            self.pr.plot(
                [0, 1], [r.prevalence] * 2, pen=dash, name=f"prevalence {r.prevalence:.2f}"
            )
        if r.calibration:
            xs, ys, _ = zip(*r.calibration, strict=True)
            brier = f"observed, Brier {r.brier:.3f}" if r.brier is not None else "observed"
            self.calibration.plot(
                list(xs), list(ys), pen=pg.mkPen(FOLD_COLORS[0], width=2), symbol="o",
                symbolSize=6, symbolBrush=FOLD_COLORS[0], name=brier,
            )  # fmt: skip
        for p in (self.roc, self.pr, self.calibration):
            p.setXRange(0, 1, padding=0.02)
            p.setYRange(0, 1, padding=0.02)

    def curve_counts(self) -> dict[str, int]:
        """Curves drawn per plot (tests)."""
        return {
            name: len([i for i in p.listDataItems() if i.xData is not None and len(i.xData)])
            for name, p in (("roc", self.roc), ("pr", self.pr), ("calibration", self.calibration))
        }
