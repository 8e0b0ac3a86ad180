"""Per-fold classification metrics at a probability threshold (0.5 by default)."""

from __future__ import annotations

import math

import numpy as np

METRIC_NAMES = (
    "auroc",
    "balanced_accuracy",
    "f1",
    "sensitivity",
    "specificity",
    "precision",
    "npv",
)
# how reports and the app name each metric
METRIC_TITLES = {
    "auroc": "AUROC",
    "balanced_accuracy": "Balanced accuracy",
    "f1": "F1",
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
    "precision": "Precision (PPV)",
    "npv": "NPV",
}


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else float("nan")


def auroc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """AUROC, or NaN when only one class is present (undefined, not 0.5)."""
    # sklearn loads here, not at import: the CLI parser uses METRIC_NAMES and must start fast
    from sklearn.metrics import roc_auc_score

    y_true = np.asarray(y_true).astype(int)
    if len(np.unique(y_true)) < 2:
        return float("nan")
    return float(roc_auc_score(y_true, np.asarray(scores, dtype=float)))


def binary_metrics(
    y_true: np.ndarray, prob: np.ndarray, threshold: float = 0.5
) -> dict[str, float]:
    """All METRIC_NAMES for one fold. Predicted positive when prob >= threshold."""
    y = np.asarray(y_true).astype(int)
    p = np.asarray(prob, dtype=float)
    pred = (p >= threshold).astype(int)
    tp = int(((pred == 1) & (y == 1)).sum())
    tn = int(((pred == 0) & (y == 0)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    sens = _ratio(tp, tp + fn)
    spec = _ratio(tn, tn + fp)
    prec = _ratio(tp, tp + fp)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    bal = (
        float(np.nanmean([sens, spec]))
        if not (math.isnan(sens) and math.isnan(spec))
        else float("nan")
    )
    return {
        "auroc": auroc(y, p),
        "balanced_accuracy": bal,
        "f1": f1,
        "sensitivity": sens,
        "specificity": spec,
        "precision": prec,
        "npv": _ratio(tn, tn + fn),
        "tp": tp,
        "tn": tn,
        "fp": fp,
        "fn": fn,
        "threshold": float(threshold),
    }


def summarize_folds(fold_metrics: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and sample SD (ddof=1) over folds for each metric, ignoring undefined folds."""
    out: dict[str, dict[str, float]] = {}
    for name in METRIC_NAMES:
        vals = np.array([m[name] for m in fold_metrics if name in m], dtype=float)
        vals = vals[~np.isnan(vals)]
        out[name] = {
            "mean": float(vals.mean()) if len(vals) else float("nan"),
            "sd": float(vals.std(ddof=1)) if len(vals) > 1 else float("nan"),
            "n": len(vals),
        }
    return out
