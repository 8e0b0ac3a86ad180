"""The report's plots: pooled ROC with bootstrap CI, precision-recall, calibration,
training curves with their phases."""

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


def pr_section(run: RunData) -> str:
    """Pooled out-of-fold precision-recall curve: with few positives it shows what the
    ROC curve hides, how many flagged infants are true positives."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    y, p = run.oof.labels, run.oof.probs
    keep = ~np.isnan(p)
    y, p = y[keep], p[keep]
    if len(set(y.tolist())) < 2:
        return "<p>Precision-recall curve undefined: only one outcome among the tested infants.</p>"
    series = []
    for i, f in enumerate(run.folds):
        if len(set(f.labels.tolist())) == 2:
            fp, fr, _ = precision_recall_curve(f.labels, f.probs)
            series.append(Series("", *_steps(fr, fp), PALETTE[i % 10], 1.0, opacity=0.3))
    precision, recall, _ = precision_recall_curve(y, p)
    series.append(Series("pooled out-of-fold", *_steps(recall, precision), "#000", 2.5))
    prevalence = float(y.mean())
    series.append(
        Series(f"chance ({prevalence:.2f})", [0.0, 1.0], [prevalence] * 2, "#888", 1.0, dash="4 3")
    )
    svg = line_plot(
        series,
        title="Precision-recall (out-of-fold)",
        x_label="recall (sensitivity)",
        y_label="precision (PPV)",
        x_range=(0, 1),
        y_range=(0, 1),
        legend="bottom",
    )
    ap = average_precision_score(y, p)
    caption = (
        f"Pooled out-of-fold average precision <b>{num(ap)}</b>; {int(y.sum())} of {len(y)} "
        f"infants positive, so a model that guesses has precision {num(prevalence)} (dashed). "
        "Thin lines: single folds."
    )
    return f"<figure>{svg}<figcaption class=muted>{caption}</figcaption></figure>"


def _steps(recall: np.ndarray, precision: np.ndarray) -> tuple[list[float], list[float]]:
    """A PR curve as steps (precision held until recall changes), as average precision
    counts it: a straight line between two points would overstate precision."""
    xs, ys = [float(recall[0])], [float(precision[0])]
    for r, pr in zip(recall[1:], precision[1:], strict=True):
        xs += [float(r), float(r)]
        ys += [ys[-1], float(pr)]
    return xs, ys


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


def phase_marks(history: list[dict]) -> tuple[list[tuple[float, str]], tuple | None]:
    """Where a fold's training phase changes (docs/method.md: probe, then head, layer4,
    ... or full): a mark at each phase's first epoch after the first, and the probe's
    epochs as a band. Epochs are 0-based over probe and fine-tuning."""
    marks: list[tuple[float, str]] = []
    probe: list[float] = []
    previous = None
    for h in history:
        phase, epoch = h.get("phase"), h.get("epoch")
        if phase is None or epoch is None:
            continue
        if phase == "probe":
            probe.append(float(epoch))
        elif phase != previous and previous is not None:
            marks.append((float(epoch) - 0.5, "fine-tune: " + str(phase) if previous == "probe"
                          else str(phase)))  # fmt: skip
        previous = phase
    band = (min(probe) - 0.5, max(probe) + 0.5, "probe") if probe else None
    return marks, band


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
    # every fold follows one schedule; the longest history has every phase
    marks, band = phase_marks(max((f.history for f in run.folds), key=len))
    phases = dict(marks=marks, band=band, integer_x=True)
    return (
        '<div class="plots">'
        + line_plot(
            loss,
            title="Training loss",
            x_label="epoch",
            y_label="train loss",
            width=540,
            legend="right",
            **phases,
        )
        + line_plot(
            auc,
            title="Test-fold AUROC per epoch",
            x_label="epoch",
            y_label="AUROC",
            y_range=(0, 1),
            width=540,
            legend="right",
            **phases,
        )
        + "</div><p class=muted>Thin lines: single folds; black: mean over folds. "
        + _phase_note(marks, band, run.config.get("train", {}))
        + "Per-epoch test AUROC is shown for insight only: the method "
        "scores the last epoch's model (no early stopping on the test fold); the last "
        "point is the fold's result.</p>"
    )


def _phase_note(marks: list, band: tuple | None, train: dict) -> str:
    """Why the loss jumps at the probe/fine-tune switch, from the run's own settings."""
    if not marks and band is None:
        return ""
    note = "Dashed vertical lines: a new training phase starts (docs/method.md). "
    if band is not None:
        note += "Shaded: the linear probe, where only the head trains. "
    if band is not None and marks:
        cutmix = (train.get("cutmix_finetune") or {}).get("enabled", True)
        why = (
            "with CutMix (mixed labels cannot reach a low loss) and augmentation"
            if cutmix
            else "with augmentation"
        )
        note += (
            f"The loss steps up where fine-tuning starts because fine-tuning trains {why} "
            "while the probe did not, and newly unfrozen layers start moving: a change of "
            "task, not divergence. "
        )
    return note
