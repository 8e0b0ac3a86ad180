"""A run's results as plain numbers for a viewer (the app's Results page), torch-free.

What the report draws as SVG (core.evaluation.report), here as data: each metric's
mean ± SD over folds with a 95% CI from a stratified bootstrap of the pooled out-of-fold
predictions, the clinical baselines, ROC and precision-recall curves (pooled and per
fold), calibration bins with the Brier score, and the per-fold table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.evaluation.run_data import RunData, load_run
from core.evaluation.statistics import bootstrap_auroc_ci
from core.scoring.metrics import METRIC_NAMES, METRIC_TITLES, summarize_folds

N_BOOT = 2000


@dataclass
class MetricRow:
    key: str
    title: str
    mean: float | None
    sd: float | None
    n_folds: int
    ci_low: float | None  # 95% CI of the pooled out-of-fold value (bootstrap)
    ci_high: float | None
    pooled: float | None  # the value on the pooled out-of-fold predictions


@dataclass
class Curve:
    x: list[float]
    y: list[float]
    label: str = ""


@dataclass
class RunResults:
    run_dir: Path
    status: str
    threshold: float | None  # one threshold for every fold, else None
    metrics: list[MetricRow]
    caveat: str | None
    baselines: list[dict[str, Any]]  # {title, auroc_mean, auroc_sd, pooled, note}
    baselines_note: str
    roc: Curve | None
    roc_folds: list[Curve]
    pr: Curve | None
    pr_folds: list[Curve]
    average_precision: float | None
    prevalence: float | None
    calibration: list[tuple[float, float, int]]  # (mean predicted, observed, infants)
    brier: float | None
    folds: list[dict[str, Any]]  # fold_id, n_train, n_test, n_test_pos, threshold, metrics
    n_patients: int = 0
    n_positive: int = 0
    summary: dict[str, Any] = field(default_factory=dict)


def _clean(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _pooled_with_ci(
    y: np.ndarray, p: np.ndarray, t: float | None, seed: int = 0
) -> dict[str, tuple[float | None, float | None, float | None]]:
    """{metric: (pooled value, CI low, CI high)}: AUROC by core's stratified bootstrap;
    threshold metrics (when the folds share one threshold) by the same resampling."""
    out: dict[str, tuple[float | None, float | None, float | None]] = {}
    if len(set(y.tolist())) < 2:
        return out
    ci = bootstrap_auroc_ci(y, p, n_boot=N_BOOT, seed=seed)
    out["auroc"] = (ci.estimate, ci.low, ci.high)
    if t is None:
        return out
    pos, neg = p[y == 1] >= t, p[y == 0] >= t  # predicted positive
    rng = np.random.default_rng(seed)
    tp = pos[rng.integers(0, len(pos), size=(N_BOOT, len(pos)))].sum(1).astype(float)
    fp = neg[rng.integers(0, len(neg), size=(N_BOOT, len(neg)))].sum(1).astype(float)
    fn, tn = len(pos) - tp, len(neg) - fp
    with np.errstate(divide="ignore", invalid="ignore"):
        boots = {
            "sensitivity": tp / (tp + fn),
            "specificity": tn / (tn + fp),
            "precision": tp / (tp + fp),
            "npv": tn / (tn + fn),
            "f1": 2 * tp / (2 * tp + fp + fn),
        }
        boots["balanced_accuracy"] = (boots["sensitivity"] + boots["specificity"]) / 2
    tp0, fp0 = float(pos.sum()), float(neg.sum())
    fn0, tn0 = len(pos) - tp0, len(neg) - fp0
    point = {
        "sensitivity": tp0 / (tp0 + fn0),
        "specificity": tn0 / (tn0 + fp0),
        "precision": tp0 / (tp0 + fp0) if tp0 + fp0 else math.nan,
        "npv": tn0 / (tn0 + fn0) if tn0 + fn0 else math.nan,
        "f1": 2 * tp0 / (2 * tp0 + fp0 + fn0) if tp0 + fp0 + fn0 else math.nan,
    }
    point["balanced_accuracy"] = (point["sensitivity"] + point["specificity"]) / 2
    for name, values in boots.items():
        values = values[~np.isnan(values)]
        low, high = np.quantile(values, [0.025, 0.975]) if len(values) else (math.nan, math.nan)
        out[name] = (_clean(point[name]), _clean(low), _clean(high))
    return out


def _curves(y: np.ndarray, p: np.ndarray, label: str) -> tuple[Curve, Curve, float]:
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_curve

    fpr, tpr, _ = roc_curve(y, p)
    precision, recall, _ = precision_recall_curve(y, p)
    return (
        Curve(fpr.tolist(), tpr.tolist(), label),
        Curve(recall.tolist(), precision.tolist(), label),
        float(average_precision_score(y, p)),
    )


def _calibration(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> list[tuple[float, float, int]]:
    """Equal-width bins of the probability, as the report's reliability plot."""
    edges = np.linspace(0, 1, n_bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, n_bins - 1)
    out = []
    for b in range(n_bins):
        in_bin = which == b
        if in_bin.any():
            out.append((float(p[in_bin].mean()), float(y[in_bin].mean()), int(in_bin.sum())))
    return out


def _baselines(run: RunData) -> tuple[list[dict[str, Any]], str]:
    from core.evaluation.report import baselines_from_cohort_table

    base = run.summary.get("baselines") or {}
    note = "On the same folds as the image model (the run's summary)."
    if not base:
        base, note = baselines_from_cohort_table(run)
    rows = []
    for key in ("irds_alone", "clinical_logistic"):
        b = base.get(key)
        if not b:
            continue
        auroc = b.get("auroc") or {}
        text = b.get("skipped") or b.get("note") or ""
        if b.get("variables"):
            text = "Variables: " + ", ".join(b["variables"])
        rows.append(
            {
                "title": b.get("title", key),
                "auroc_mean": _clean(auroc.get("mean")),
                "auroc_sd": _clean(auroc.get("sd")),
                "pooled": _clean(b.get("pooled_auroc")),
                "note": str(text),
            }
        )
    return rows, note


def read_run_results(run_dir: str | Path) -> RunResults:
    """Everything the Results page shows of one run; InputError when it has no finished
    fold (core.evaluation.run_data.load_run)."""
    run = load_run(run_dir)
    stats = summarize_folds([f.metrics for f in run.folds])
    for name in METRIC_NAMES:
        if isinstance(run.summary.get(name), dict):
            stats[name] = run.summary[name]
    thresholds = {f.threshold for f in run.folds}
    t = next(iter(thresholds)) if len(thresholds) == 1 else None
    keep = ~np.isnan(run.oof.probs)
    y, p = run.oof.labels[keep], run.oof.probs[keep]
    pooled = _pooled_with_ci(y, p, t)
    metrics = []
    for name in METRIC_NAMES:
        s = stats.get(name) or {}
        value, low, high = pooled.get(name, (None, None, None))
        metrics.append(
            MetricRow(
                name,
                METRIC_TITLES[name],
                _clean(s.get("mean")),
                _clean(s.get("sd")),
                int(s.get("n") or 0),
                low,
                high,
                value,
            )
        )
    roc = pr = None
    roc_folds: list[Curve] = []
    pr_folds: list[Curve] = []
    ap = None
    if len(set(y.tolist())) == 2:
        roc, pr, ap = _curves(y, p, "pooled out-of-fold")
        for f in run.folds:
            if len(set(f.labels.tolist())) == 2:
                fr, fp, _ = _curves(f.labels, f.probs, f.fold_id)
                roc_folds.append(fr)
                pr_folds.append(fp)
    folds = [
        {
            "fold_id": f.fold_id,
            "n_train": len(f.train_patients),
            "n_test": len(f.test_patients),
            "n_test_pos": int(f.labels.sum()) if len(f.labels) else None,
            "threshold": _clean(f.threshold),
            "metrics": {m: _clean(f.metrics.get(m)) for m in METRIC_NAMES},
        }
        for f in run.folds
    ]
    baselines, baselines_note = _baselines(run)
    return RunResults(
        run_dir=run.run_dir,
        status=str(run.state.get("status", "unknown")),
        threshold=t,
        metrics=metrics,
        caveat=run.summary.get("caveat"),
        baselines=baselines,
        baselines_note=baselines_note,
        roc=roc,
        roc_folds=roc_folds,
        pr=pr,
        pr_folds=pr_folds,
        average_precision=ap,
        prevalence=float(y.mean()) if len(y) else None,
        calibration=_calibration(y, p),
        brier=float(np.mean((p - y) ** 2)) if len(p) else None,
        folds=folds,
        n_patients=len(y),
        n_positive=int(y.sum()),
        summary=run.summary,
    )
