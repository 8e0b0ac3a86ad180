"""Paired comparisons of a study's arms (runs on the same patients and folds).

Each arm is compared with the best (highest mean fold AUROC) by three tests, each
answering a different question:
- exact Wilcoxon signed-rank over the repeats' mean AUROCs (the paper's test; with r
  repeats its p cannot go below 2 / 2**r);
- Nadeau & Bengio's corrected resampled t-test over the folds (statistics.
  corrected_resampled_t): folds share training patients, so the variance is inflated
  by n_test / n_train;
- DeLong on the pooled out-of-fold probabilities (each patient's mean over repeats):
  patient sampling only, blind to training variance.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from core.errors import InputError
from core.evaluation.compare import check_comparable
from core.evaluation.run_data import RunData
from core.evaluation.statistics import corrected_resampled_t, delong_test, wilcoxon_signed_rank


def fold_aurocs(run: RunData) -> dict[str, float]:
    out = {}
    for f in run.folds:
        v = f.metrics.get("auroc")
        out[f.fold_id] = math.nan if v is None else float(v)
    return out


def repeat_aurocs(fold_values: dict[str, float], repeat_of: dict[str, int]) -> dict[int, float]:
    by_repeat: dict[int, list[float]] = {}
    for fold_id, v in fold_values.items():
        if not math.isnan(v):
            by_repeat.setdefault(repeat_of[fold_id], []).append(v)
    return {r: float(np.mean(v)) for r, v in sorted(by_repeat.items())}


def split_sizes(run: RunData) -> tuple[float, float]:
    """Mean (n_train, n_test) patients per fold: the corrected t-test's ratio."""
    n_train = float(np.mean([len(f.train_patients) for f in run.folds]))
    n_test = float(np.mean([len(f.test_patients) for f in run.folds]))
    return n_train, n_test


def corrected_ci(run: RunData) -> tuple[float, float] | None:
    """95% CI of an arm's mean fold AUROC with the corrected resampled variance."""
    values = [v for v in fold_aurocs(run).values() if not math.isnan(v)]
    if len(values) < 2:
        return None
    n_train, n_test = split_sizes(run)
    res = corrected_resampled_t(values, n_train=n_train, n_test=n_test)
    return res.ci_low, res.ci_high


def compare_fold_values(
    best: dict[str, float], other: dict[str, float], repeat_of: dict[str, int],
    n_train: float, n_test: float,
) -> dict[str, Any]:  # fmt: skip
    """Wilcoxon over repeats and the corrected t over folds of best - other."""
    keys = [k for k in best if k in other and not (math.isnan(best[k]) or math.isnan(other[k]))]
    out: dict[str, Any] = {"n_folds": len(keys)}
    rb = repeat_aurocs({k: best[k] for k in keys}, repeat_of)
    ro = repeat_aurocs({k: other[k] for k in keys}, repeat_of)
    reps = [r for r in rb if r in ro]
    w = wilcoxon_signed_rank([rb[r] for r in reps], [ro[r] for r in reps])
    out["wilcoxon"] = {**w.to_json(), "smallest_possible_p": 2 / 2**w.n if w.n else 1.0}
    out["n_repeats"] = len(reps)
    if len(keys) >= 2:
        t = corrected_resampled_t(
            [best[k] for k in keys], [other[k] for k in keys], n_train=n_train, n_test=n_test
        )
        out["corrected_t"] = t.to_json()
    else:
        out["corrected_t"] = None
    return out


def compare_arms(best: RunData, other: RunData) -> dict[str, Any]:
    """best - other by all three tests; {"error": why} when the runs do not pair."""
    try:
        check_comparable(best, other)
    except InputError as exc:
        return {"error": exc.detail}
    repeat_of = {f.fold_id: f.repeat for f in best.folds}
    n_train, n_test = split_sizes(best)
    out = compare_fold_values(fold_aurocs(best), fold_aurocs(other), repeat_of, n_train, n_test)
    order = {pid: i for i, pid in enumerate(other.oof.patient_ids)}
    idx = np.array([order[p] for p in best.oof.patient_ids])
    pa, pb, y = best.oof.probs, other.oof.probs[idx], best.oof.labels
    keep = ~(np.isnan(pa) | np.isnan(pb))
    try:
        out["delong"] = delong_test(y[keep], pa[keep], pb[keep]).to_json()
    except ValueError as exc:  # fewer than two patients of an outcome
        out["delong"] = {"error": str(exc)}
    return out


def compare_baseline(best: RunData, baseline: dict[str, Any]) -> dict[str, Any]:
    """best - a clinical baseline over the same folds (its per-fold AUROCs); no DeLong:
    the summary keeps the baseline's fold AUROCs, not its scores per patient."""
    folds = {str(f["fold_id"]): f.get("auroc") for f in baseline.get("folds") or []}
    values = {k: math.nan if v is None else float(v) for k, v in folds.items()}
    repeat_of = {f.fold_id: f.repeat for f in best.folds}
    values = {k: v for k, v in values.items() if k in repeat_of}
    if not values:
        return {"error": "the baseline has no fold AUROCs"}
    n_train, n_test = split_sizes(best)
    out = compare_fold_values(fold_aurocs(best), values, repeat_of, n_train, n_test)
    out["delong"] = {"error": "no per-patient baseline scores kept"}
    return out
