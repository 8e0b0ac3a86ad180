"""Clinical baselines on the image model's own folds, for the run summary's "baselines".

- IRDS grade alone as the score (higher grade = more likely BPD), AUROC per test fold:
  the paper's "IRDS grade alone, 0.57 +- 0.11" row. It needs no fitting, so the
  training patients are not used.
- Logistic regression on the clinical variables present (gestational age, birth
  weight, IRDS grade): fit on each training fold (missing values replaced by that
  training fold's median, then standardised with its mean/SD), scored on its test fold.

Variables that no patient has are skipped with a reason; patients missing the IRDS
grade are left out of the IRDS-alone AUROC (and counted). Sex is not used: the paper's
baseline is IRDS, and sex carries little signal for BPD at these birth weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from core.cohort.model import Patient
from core.errors import InputError
from core.scoring.metrics import auroc

# (attribute of ClinicalValues, readable name)
CLINICAL_VARIABLES = (
    ("gestational_age_weeks", "gestational age (weeks)"),
    ("birth_weight_g", "birth weight (g)"),
    ("irds_grade", "IRDS grade"),
)

Split = tuple[str, Sequence[str], Sequence[str]]  # (fold_id, train ids, test ids)


def _finite_or_none(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _mean_sd(values: list[float]) -> dict:
    v = np.array([x for x in values if x is not None and not math.isnan(x)], dtype=float)
    return {
        "mean": float(v.mean()) if len(v) else None,
        "sd": float(v.std(ddof=1)) if len(v) > 1 else None,
        "n": len(v),
    }


def _value(p: Patient, attr: str) -> float:
    v = getattr(p.clinical, attr)
    return float("nan") if v is None else float(v)


def _patients_by_id(patients: list[Patient], splits: list[Split]) -> dict[str, Patient]:
    by_id = {p.patient_id: p for p in patients}
    for fold_id, train_ids, test_ids in splits:
        missing = [pid for pid in (*train_ids, *test_ids) if pid not in by_id]
        if missing:
            raise InputError(
                f"fold {fold_id} names patient {missing[0]!r} that is not in the cohort "
                f"({len(missing)} unknown id(s)); the folds and cohort do not belong together"
            )
    return by_id


def irds_alone(patients: list[Patient], splits: list[Split]) -> dict:
    """AUROC of the IRDS grade as the score, per test fold, mean +- SD over folds."""
    by_id = _patients_by_id(patients, splits)
    title = "IRDS grade alone"
    recorded = [p for p in by_id.values() if p.clinical.irds_grade is not None]
    if not recorded:
        return {"title": title, "skipped": "no IRDS grade recorded for any patient"}
    folds = []
    for fold_id, _train, test_ids in splits:
        test = [by_id[i] for i in test_ids if by_id[i].clinical.irds_grade is not None]
        y = np.array([p.label for p in test])
        s = np.array([p.clinical.irds_grade for p in test], dtype=float)
        folds.append(
            {
                "fold_id": fold_id,
                "auroc": _finite_or_none(auroc(y, s)) if len(test) else None,
                "n_test": len(test_ids),
                "n_used": len(test),
            }
        )
    y_all = np.array([p.label for p in recorded])
    s_all = np.array([p.clinical.irds_grade for p in recorded], dtype=float)
    n_missing = len(by_id) - len(recorded)
    return {
        "title": title,
        "skipped": None,
        "auroc": _mean_sd([f["auroc"] for f in folds if f["auroc"] is not None]),
        "pooled_auroc": _finite_or_none(auroc(y_all, s_all)),
        "n_patients": len(recorded),
        "n_missing": n_missing,
        "note": (f"{n_missing} patient(s) without an IRDS grade left out" if n_missing else None),
        "folds": folds,
    }


def _fit_and_score(train: list[Patient], test: list[Patient], attrs: list[str]) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    x_train = np.array([[_value(p, a) for a in attrs] for p in train], dtype=float)
    x_test = np.array([[_value(p, a) for a in attrs] for p in test], dtype=float)
    y_train = np.array([p.label for p in train])
    medians = np.nanmedian(x_train, axis=0)  # training fold only
    x_train = np.where(np.isnan(x_train), medians, x_train)
    x_test = np.where(np.isnan(x_test), medians, x_test)
    mean, sd = x_train.mean(axis=0), x_train.std(axis=0)
    sd[sd == 0] = 1.0  # a constant column carries no information; keep it harmless
    model = LogisticRegression(max_iter=1000)
    model.fit((x_train - mean) / sd, y_train)
    return model.predict_proba((x_test - mean) / sd)[:, 1]


def clinical_logistic(patients: list[Patient], splits: list[Split]) -> dict:
    """Logistic regression on the clinical variables present, fit per training fold."""
    by_id = _patients_by_id(patients, splits)
    title = "Logistic regression on clinical variables"
    used, skipped, missing = [], {}, {}
    for attr, name in CLINICAL_VARIABLES:
        n_missing = sum(getattr(p.clinical, attr) is None for p in by_id.values())
        if n_missing == len(by_id):
            skipped[name] = "not recorded for any patient"
        else:
            used.append(attr)
            missing[name] = n_missing
    if not used:
        return {
            "title": title,
            "skipped": "no clinical variable recorded",
            "skipped_variables": skipped,
        }
    folds, oof = [], {}
    for fold_id, train_ids, test_ids in splits:
        train = [by_id[i] for i in train_ids]
        test = [by_id[i] for i in test_ids]
        fold_attrs = [a for a in used if any(getattr(p.clinical, a) is not None for p in train)]
        entry = {"fold_id": fold_id, "n_train": len(train), "n_test": len(test)}
        if len({p.label for p in train}) < 2 or not fold_attrs or not test:
            entry.update(auroc=None, note="training fold lacks an outcome or any variable")
            folds.append(entry)
            continue
        prob = _fit_and_score(train, test, fold_attrs)
        entry["auroc"] = _finite_or_none(auroc(np.array([p.label for p in test]), prob))
        if len(fold_attrs) < len(used):
            entry["note"] = "a variable missing in the whole training fold was left out"
        folds.append(entry)
        for p, pr in zip(test, prob, strict=True):
            oof.setdefault(p.patient_id, []).append(float(pr))
    ids = sorted(oof)
    pooled = auroc(
        np.array([by_id[i].label for i in ids]), np.array([np.mean(oof[i]) for i in ids])
    )
    return {
        "title": title,
        "skipped": None,
        "variables": [name for attr, name in CLINICAL_VARIABLES if attr in used],
        "skipped_variables": skipped,
        "missing": missing,
        "imputation": "missing values replaced by the training fold's median; "
        "standardised with the training fold's mean and SD",
        "auroc": _mean_sd([f["auroc"] for f in folds if f["auroc"] is not None]),
        "pooled_auroc": _finite_or_none(pooled) if ids else None,
        "folds": folds,
    }


def clinical_baselines(patients: list[Patient], splits: list[Split]) -> dict:
    """Both baselines on the given folds, as plain JSON (None where undefined)."""
    splits = [(str(f), [str(i) for i in tr], [str(i) for i in te]) for f, tr, te in splits]
    return {
        "n_folds": len(splits),
        "irds_alone": irds_alone(patients, splits),
        "clinical_logistic": clinical_logistic(patients, splits),
    }


def baselines_for_folds(patients: list[Patient], fold_infos: list[dict]) -> dict:
    """`clinical_baselines` on a run's folds as the fold records hold them (dicts with
    fold_id, train_patients, test_patients): the one call a runner needs before it
    writes the summary's "baselines"."""
    splits = [(f["fold_id"], f["train_patients"], f["test_patients"]) for f in fold_infos]
    return clinical_baselines(patients, splits)
