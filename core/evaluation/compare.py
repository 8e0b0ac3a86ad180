"""Compare two runs on the same patients and folds (e.g. adult-CXR vs ImageNet init).

- exact Wilcoxon signed-rank test on the paired repeat-level mean AUROCs (the paper's
  p = 0.031 is this test on 6 repeats), and the same on the paired folds;
- DeLong's test on the pooled out-of-fold probabilities of the same patients, with the
  AUROC difference and its 95% CI.

Runs whose patients, outcomes or fold assignments differ are refused: a paired test on
unpaired data would be meaningless.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from core.errors import InputError
from core.evaluation.run_data import RunData, load_run
from core.evaluation.statistics import corrected_resampled_t, delong_test, wilcoxon_signed_rank


def _examples(ids: set[str]) -> str:
    shown = sorted(ids)[:3]
    return ", ".join(repr(i) for i in shown) + (", ..." if len(ids) > 3 else "")


def check_comparable(a: RunData, b: RunData) -> None:
    """InputError naming the first difference in patients, outcomes or folds."""
    ids_a, ids_b = set(a.oof.patient_ids), set(b.oof.patient_ids)
    if ids_a != ids_b:
        only_a, only_b = ids_a - ids_b, ids_b - ids_a
        parts = []
        if only_a:
            parts.append(f"{len(only_a)} only in {a.name} ({_examples(only_a)})")
        if only_b:
            parts.append(f"{len(only_b)} only in {b.name} ({_examples(only_b)})")
        raise InputError("the runs cover different patients: " + "; ".join(parts))
    label_b = dict(zip(b.oof.patient_ids, b.oof.labels.tolist(), strict=True))
    differ = {
        p for p, y in zip(a.oof.patient_ids, a.oof.labels.tolist(), strict=True) if label_b[p] != y
    }
    if differ:
        raise InputError(
            f"the runs give {len(differ)} patient(s) different outcomes ({_examples(differ)}): "
            "were they trained with different outcome mappings?"
        )
    folds_a = {f.fold_id: f for f in a.folds}
    folds_b = {f.fold_id: f for f in b.folds}
    if folds_a.keys() != folds_b.keys():
        only_a = sorted(folds_a.keys() - folds_b.keys())
        only_b = sorted(folds_b.keys() - folds_a.keys())
        raise InputError(
            "the runs have different finished folds: "
            f"{only_a or 'none'} only in {a.name}, {only_b or 'none'} only in {b.name} "
            "(finish or resume both runs first)"
        )
    for fold_id in sorted(folds_a):
        fa, fb = folds_a[fold_id], folds_b[fold_id]
        if set(fa.test_patients) != set(fb.test_patients):
            diff = set(fa.test_patients) ^ set(fb.test_patients)
            raise InputError(
                f"fold {fold_id} tests different patients in the two runs "
                f"({len(diff)} differ, e.g. {_examples(diff)}): the runs used different "
                "fold assignments (seed, number of folds or CV scheme)"
            )


def _auroc_of(fold) -> float:
    value = fold.metrics.get("auroc")  # null in summary files where a fold was one-class
    return math.nan if value is None else float(value)


def _fold_auroc(run: RunData) -> dict[str, float]:
    return {f.fold_id: _auroc_of(f) for f in run.folds}


def _repeat_auroc(run: RunData) -> dict[int, float]:
    by_repeat: dict[int, list[float]] = {}
    for f in run.folds:
        by_repeat.setdefault(f.repeat, []).append(_auroc_of(f))
    out = {}
    for r, values in sorted(by_repeat.items()):
        finite = [x for x in values if not math.isnan(x)]
        out[r] = float(np.mean(finite)) if finite else math.nan
    return out


def _paired(a: dict, b: dict, label: str) -> dict:
    keys = [k for k in a if not (math.isnan(a[k]) or math.isnan(b[k]))]
    xa = np.array([a[k] for k in keys])
    xb = np.array([b[k] for k in keys])
    res = wilcoxon_signed_rank(xa, xb)
    return {
        "unit": label,
        "keys": [str(k) for k in keys],
        "a": xa.tolist(),
        "b": xb.tolist(),
        "mean_a": float(xa.mean()) if len(xa) else None,
        "mean_b": float(xb.mean()) if len(xb) else None,
        "a_better": int((xa > xb).sum()),
        "b_better": int((xa < xb).sum()),
        # An exact test on n pairs cannot go below 2 / 2**n: 6 pairs -> 0.031.
        "smallest_possible_p": 2 / 2**res.n if res.n else 1.0,
        "wilcoxon": res.to_json(),
    }


def _corrected_t(a: RunData, b: RunData) -> dict | None:
    """Nadeau & Bengio's corrected resampled t over the paired folds (folds share
    training patients, so the fold-level Wilcoxon alone is optimistic); None under 2."""
    fa, fb = _fold_auroc(a), _fold_auroc(b)
    keys = [k for k in fa if not (math.isnan(fa[k]) or math.isnan(fb[k]))]
    if len(keys) < 2:
        return None
    n_train = float(np.mean([len(f.train_patients) for f in a.folds]))
    n_test = float(np.mean([len(f.test_patients) for f in a.folds]))
    res = corrected_resampled_t(
        [fa[k] for k in keys], [fb[k] for k in keys], n_train=n_train, n_test=n_test
    )
    return res.to_json()


def compare_runs(run_a: str | Path, run_b: str | Path) -> dict:
    a, b = load_run(run_a), load_run(run_b)
    check_comparable(a, b)
    order = {pid: i for i, pid in enumerate(b.oof.patient_ids)}
    idx_b = np.array([order[p] for p in a.oof.patient_ids])
    pa, pb, y = a.oof.probs, b.oof.probs[idx_b], a.oof.labels
    keep = ~(np.isnan(pa) | np.isnan(pb))
    delong = delong_test(y[keep], pa[keep], pb[keep])
    return {
        "run_a": str(a.run_dir),
        "run_b": str(b.run_dir),
        "n_patients": int(keep.sum()),
        "n_positive": int(y[keep].sum()),
        "repeats": _paired(_repeat_auroc(a), _repeat_auroc(b), "repeat-level mean AUROC"),
        "folds": _paired(_fold_auroc(a), _fold_auroc(b), "fold AUROC"),
        "folds_corrected_t": _corrected_t(a, b),
        "delong": delong.to_json(),
    }


def _n(x: float | None, d: int = 3) -> str:
    return "–" if x is None or x != x else f"{x:.{d}f}"


def _p(p: float) -> str:
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def format_comparison(result: dict) -> str:
    """A readable table for the terminal."""
    name_a, name_b = Path(result["run_a"]).name, Path(result["run_b"]).name
    d = result["delong"]
    lines = [
        f"A = {name_a}",
        f"B = {name_b}",
        f"{result['n_patients']} patients ({result['n_positive']} positive), same folds.",
        "",
        f"{'comparison':<28}{'A':>8}{'B':>8}{'A-B':>9}{'pairs':>7}{'A>B':>5}{'p':>10}",
    ]
    for key in ("repeats", "folds"):
        r = result[key]
        w = r["wilcoxon"]
        diff = (r["mean_a"] - r["mean_b"]) if r["mean_a"] is not None else None
        lines.append(
            f"{r['unit']:<28}{_n(r['mean_a']):>8}{_n(r['mean_b']):>8}{_n(diff):>9}"
            f"{len(r['keys']):>7}{r['a_better']:>5}{_p(w['p_value']):>10}"
        )
    t = result.get("folds_corrected_t")
    if t:
        lines.append(
            f"{'folds, corrected t':<28}{'':>8}{'':>8}{_n(t['mean_difference']):>9}"
            f"{t['n_folds']:>7}{'':>5}{_p(t['p_value']):>10}"
        )
    lines.append(
        f"{'pooled OOF AUROC (DeLong)':<28}{_n(d['auc_a']):>8}{_n(d['auc_b']):>8}"
        f"{_n(d['difference']):>9}{'':>7}{'':>5}{_p(d['p_value']):>10}"
    )
    lines += [
        "",
        f"AUROC difference A - B: {_n(d['difference'])} "
        f"(95% CI {_n(d['ci_low'])} to {_n(d['ci_high'])}, DeLong z = {_n(d['z'], 2)})",
        "Corrected t: Nadeau & Bengio's resampled t-test over the folds, variance "
        "inflated by n_test/n_train because folds share training patients.",
        "Wilcoxon: exact two-sided signed-rank test on paired values; the smallest "
        f"possible p with {len(result['repeats']['keys'])} repeats is "
        f"{_n(result['repeats']['smallest_possible_p'], 4)}.",
    ]
    return "\n".join(lines)
