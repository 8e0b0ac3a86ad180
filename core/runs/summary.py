"""Run-level results from the folds: out-of-fold predictions and summary.json."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from core.evaluation.metrics import auroc, summarize_folds


def pooled_predictions(fold_rows: list[dict[str, Any]], n_repeats: int) -> list[dict[str, Any]]:
    """One row per patient: label, prob = mean over the repeats that tested it,
    n_repeats, prob_r0 ... prob_r{R-1} (empty where a repeat did not test the patient,
    e.g. leftover negatives of the paper's scheme)."""
    by_patient: dict[str, dict[str, Any]] = {}
    probs: dict[str, dict[int, float]] = defaultdict(dict)
    for row in fold_rows:
        pid = str(row["patient_id"])
        by_patient.setdefault(pid, {"patient_id": pid, "label": int(row["label"])})
        probs[pid][int(row["repeat"])] = float(row["prob"])
    out = []
    for pid, base in by_patient.items():
        per_repeat = probs[pid]
        row = dict(base)
        row["prob"] = float(np.mean(list(per_repeat.values())))
        row["n_repeats"] = len(per_repeat)
        for r in range(n_repeats):
            row[f"prob_r{r}"] = per_repeat.get(r, "")
        out.append(row)
    return out


def prediction_fields(n_repeats: int) -> list[str]:
    return ["patient_id", "label", "prob", "n_repeats", *[f"prob_r{r}" for r in range(n_repeats)]]


def run_summary(
    fold_results: list[dict[str, Any]],
    pooled: list[dict[str, Any]],
    n_patients: int,
    n_positive: int,
) -> dict[str, Any]:
    """fold_results: [{repeat, fold, metrics}]. pooled: rows of `pooled_predictions`."""
    summary: dict[str, Any] = dict(summarize_folds([f["metrics"] for f in fold_results]))
    labels = np.array([r["label"] for r in pooled], dtype=int)
    probs = np.array([r["prob"] for r in pooled], dtype=float)
    pooled_value = auroc(labels, probs) if len(pooled) else float("nan")
    repeats = sorted({int(f["repeat"]) for f in fold_results})
    repeat_auroc = []
    for r in repeats:
        vals = [f["metrics"]["auroc"] for f in fold_results if int(f["repeat"]) == r]
        vals = [v for v in vals if not np.isnan(v)]
        repeat_auroc.append(float(np.mean(vals)) if vals else float("nan"))
    summary.update(
        {
            "pooled_auroc": _clean(pooled_value),
            "n_patients": int(n_patients),
            "n_positive": int(n_positive),
            "n_folds": len(fold_results),
            "repeat_auroc": [_clean(v) for v in repeat_auroc],
        }
    )
    return _clean_tree(summary)


def _clean(v: float) -> float | None:
    """JSON has no NaN: an undefined value (e.g. AUROC of a one-class fold) is null."""
    return None if v is None or (isinstance(v, float) and np.isnan(v)) else float(v)


def _clean_tree(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _clean_tree(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean_tree(v) for v in obj]
    if isinstance(obj, float):
        return _clean(obj)
    return obj
