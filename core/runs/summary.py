"""Run-level results from the folds: pooled out-of-fold predictions and the run summary."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from core.scoring.metrics import auroc, summarize_folds


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


# A test fold with fewer positives or negatives than this gives an AUROC that moves in
# steps of 1/(pos x neg) and a bootstrap CI that collapses (4 patients: 1.000, CI
# 1.000-1.000): the run's numbers then get a caveat (run summary, CLI, report).
MIN_PER_CLASS_PER_TEST_FOLD = 5


def fold_test_counts(
    fold_results: list[dict[str, Any]], pooled: list[dict[str, Any]]
) -> list[tuple[int, int]]:
    """(positives, negatives) in each fold's test set, from each fold record's test_patients
    and the pooled labels."""
    label = {str(r["patient_id"]): int(r["label"]) for r in pooled}
    counts = []
    for f in fold_results:
        labels = [label[str(p)] for p in f.get("test_patients", []) if str(p) in label]
        counts.append((sum(labels), len(labels) - sum(labels)))
    return counts


def small_cohort_caveat(
    counts: list[tuple[int, int]], where: str = "a test fold holds as few as"
) -> str | None:
    """A sentence saying the numbers mean little when the smallest test fold (or the one
    set of `counts`) has fewer than MIN_PER_CLASS_PER_TEST_FOLD positive or negative
    patients; None otherwise."""
    if not counts:
        return None
    pos, neg = min(c[0] for c in counts), min(c[1] for c in counts)
    if min(pos, neg) >= MIN_PER_CLASS_PER_TEST_FOLD:
        return None
    return (
        f"Too few patients for these numbers to mean much: {where} {pos} "
        f"positive and {neg} negative patient(s) (fewer than {MIN_PER_CLASS_PER_TEST_FOLD} "
        "of either). AUROC and the other metrics can take only a few values on so few "
        "patients and their confidence intervals are not reliable; read them as a check "
        "that the pipeline runs, not as an estimate of accuracy."
    )


ENSEMBLE_AUROC_MEANING = (
    "AUROC of each tested patient's out-of-fold probability averaged over the repeats "
    "that tested the patient: an ensemble of up to one fold model per repeat, scored "
    "once per patient. Not the mean of the folds' AUROCs (the `auroc` entry); patients "
    "never tested are not in it."
)


def fold_coverage(
    fold_results: list[dict[str, Any]], n_patients: int, n_positive: int, cv_scheme: str | None
) -> dict[str, Any]:
    """How many patients each repeat tested, how many no repeat tested, and why (the
    authors' 1:1 folds leave negatives out; stratified folds test everyone once)."""
    tested_by_repeat: dict[int, set[str]] = defaultdict(set)
    for f in fold_results:
        tested_by_repeat[int(f["repeat"])].update(str(p) for p in f.get("test_patients", []))
    ever = set().union(*tested_by_repeat.values()) if tested_by_repeat else set()
    per_repeat = [
        {"repeat": r, "tested": len(ids), "not_tested": n_patients - len(ids)}
        for r, ids in sorted(tested_by_repeat.items())
    ]
    never = n_patients - len(ever)
    n_negative = n_patients - n_positive
    if cv_scheme == "paper":
        left = max(n_negative - n_positive, 0)
        why = (
            "The authors' 1:1 test folds pair each fold's share of the positive patients "
            f"with as many negatives: with {n_positive} positive and {n_negative} negative "
            f"patients a repeat tests at most {n_patients - left} and leaves {left} "
            "negatives untested, a different random set in each repeat; "
            f"{never} patient(s) were tested in no repeat and have no out-of-fold prediction."
        )
    elif cv_scheme == "stratified":
        why = "Stratified patient-grouped folds test every patient once per repeat" + (
            f"; {never} patient(s) untested belong to folds not finished." if never else "."
        )
    else:
        why = f"{never} patient(s) were tested in no repeat."
    return {
        "cv_scheme": cv_scheme,
        "per_repeat": per_repeat,
        "never_tested": never,
        "why": why,
    }


def run_summary(
    fold_results: list[dict[str, Any]],
    pooled: list[dict[str, Any]],
    n_patients: int,
    n_positive: int,
    cv_scheme: str | None = None,
) -> dict[str, Any]:
    """fold_results: [{repeat, fold, metrics, test_patients}]. pooled: rows of
    `pooled_predictions`. `cv_scheme` names the folds in the `testing` entry's reason."""
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
            # kept for older readers: the same number as ensemble_auroc
            "pooled_auroc": _clean(pooled_value),
            "ensemble_auroc": _clean(pooled_value),
            "ensemble_auroc_meaning": ENSEMBLE_AUROC_MEANING,
            "testing": fold_coverage(fold_results, n_patients, n_positive, cv_scheme),
            "n_patients": int(n_patients),
            "n_positive": int(n_positive),
            "n_folds": len(fold_results),
            "repeat_auroc": [_clean(v) for v in repeat_auroc],
            "caveat": small_cohort_caveat(fold_test_counts(fold_results, pooled)),
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
