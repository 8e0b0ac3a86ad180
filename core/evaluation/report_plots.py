"""The report's plots: pooled ROC with bootstrap CI, calibration, training curves."""

from __future__ import annotations

import math

import numpy as np

from core.evaluation.report_html import num, table
from core.evaluation.run_data import RunData
from core.evaluation.statistics import bootstrap_auroc_ci
from core.evaluation.svg import PALETTE, Series, line_plot


def roc_section(run: RunData) -> str:
    from sklearn.metrics import roc_curve

    y, p = run.oof.labels, run.oof.probs
    keep = ~np.isnan(p)
    y, p = y[keep], p[keep]
    if len(set(y.tolist())) < 2:
        return "<p>Pooled ROC curve undefined: only one outcome among the tested patients.</p>"
    ci = bootstrap_auroc_ci(y, p, n_boot=2000, seed=0)
    series = []
    for i, f in enumerate(run.folds):
        if len(set(f.labels.tolist())) == 2:
            fx, fy, _ = roc_curve(f.labels, f.probs)
            series.append(Series("", list(fx), list(fy), PALETTE[i % 10], 1.0, opacity=0.3))
    fx, fy, _ = roc_curve(y, p)
    series.append(Series("pooled out-of-fold", list(fx), list(fy), "#000", 2.5))
    svg = line_plot(
        series,
        title="ROC curve (out-of-fold)",
        x_label="1 − specificity",
        y_label="sensitivity",
        x_range=(0, 1),
        y_range=(0, 1),
        diagonal=True,
        legend="bottom",
    )
    caption = (
        f"Pooled out-of-fold AUROC <b>{num(ci.estimate)}</b> "
        f"(95% CI {num(ci.low)}–{num(ci.high)}, stratified percentile bootstrap, "
        f"{ci.n_boot} resamples), {len(y)} infants, each scored by the mean probability "
        "of the fold models that did not train on them. Thin lines: single folds."
    )
    return f"<figure>{svg}<figcaption class=muted>{caption}</figcaption></figure>"


def calibration_section(run: RunData, n_bins: int = 10) -> str:
    y, p = run.oof.labels, run.oof.probs
    keep = ~np.isnan(p)
    y, p = y[keep], p[keep]
    edges = np.linspace(0, 1, n_bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, n_bins - 1)
    xs, ys, counts = [], [], []
    for b in range(n_bins):
        in_bin = which == b
        if in_bin.any():
            xs.append(float(p[in_bin].mean()))
            ys.append(float(y[in_bin].mean()))
            counts.append(int(in_bin.sum()))
    svg = line_plot(
        [Series("observed", xs, ys, PALETTE[0], 2.0, markers=True)],
        title="Calibration (reliability)",
        x_label="mean predicted probability",
        y_label="observed fraction positive",
        x_range=(0, 1),
        y_range=(0, 1),
        diagonal=True,
        legend=None,
    )
    brier = float(np.mean((p - y) ** 2)) if len(p) else math.nan
    rows = [[num(x), num(o), str(c)] for x, o, c in zip(xs, ys, counts, strict=True)]
    return (
        f"<figure>{svg}<figcaption class=muted>{n_bins} equal-width bins of the pooled "
        f"out-of-fold probability; dashed: perfect calibration. Brier score {num(brier)}."
        f"</figcaption></figure><div>"
        + table(["predicted", "observed", "infants"], rows, left=0)
        + "</div>"
    )


def _mean_series(series: list[Series]) -> Series:
    by_epoch: dict[float, list[float]] = {}
    for s in series:
        for x, y in zip(s.x, s.y, strict=True):
            if x is not None and y is not None and math.isfinite(y):
                by_epoch.setdefault(x, []).append(y)
    xs = sorted(by_epoch)
    return Series("mean over folds", xs, [float(np.mean(by_epoch[x])) for x in xs], "#000", 2.5)


def history_section(run: RunData) -> str:
    loss, auc = [], []
    for i, f in enumerate(run.folds):
        epochs = [h.get("epoch") for h in f.history]
        color = PALETTE[i % 10]
        width, opacity = (1.5, 0.9) if len(run.folds) <= 10 else (1.0, 0.35)
        aucs = [h.get("test_auroc") for h in f.history]
        if aucs and aucs[-1] is None:  # the last epoch is scored as the fold's result
            aucs[-1] = f.metrics.get("auroc")
        losses = [h.get("train_loss") for h in f.history]
        loss.append(Series(f.fold_id, epochs, losses, color, width, opacity=opacity))
        auc.append(Series(f.fold_id, epochs, aucs, color, width, opacity=opacity))
    if not any(s.x for s in loss):
        return "<p>No per-epoch history recorded in the folds.</p>"
    for out in (loss, auc):  # the mean over folds, per epoch, drawn on top
        out.append(_mean_series(out))
    if len(run.folds) > 10:  # 30 fold names would hide the plot: name the mean only
        for out in (loss, auc):
            for s in out[:-1]:
                s.name = ""
    return (
        '<div class="plots">'
        + line_plot(
            loss,
            title="Training loss",
            x_label="epoch",
            y_label="train loss",
            width=540,
            legend="right",
        )
        + line_plot(
            auc,
            title="Test-fold AUROC per epoch",
            x_label="epoch",
            y_label="AUROC",
            y_range=(0, 1),
            width=540,
            legend="right",
        )
        + "</div><p class=muted>Thin lines: single folds; black: mean over folds. "
        "Per-epoch test AUROC is shown for insight only: the method "
        "scores the last epoch's model (no early stopping on the test fold); the last "
        "point is the fold's result.</p>"
    )
