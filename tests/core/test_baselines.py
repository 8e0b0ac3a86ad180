"""Clinical baselines on tables where the answer is known by hand."""

import json
import math
from pathlib import Path

import pytest

from core.cohort.model import ClinicalValues, ImageRecord, Patient
from core.errors import InputError
from core.scoring.baselines import clinical_baselines


def _patient(pid, label, irds=None, ga=None, bw=None):
    return Patient(
        patient_id=pid,
        label=label,
        outcome_raw="moderate" if label else "mild",
        images=(ImageRecord(Path(f"/x/{pid}.png"), row=1),),
        clinical=ClinicalValues(gestational_age_weeks=ga, birth_weight_g=bw, irds_grade=irds),
    )


def test_irds_perfectly_separating_gives_auroc_one():
    patients = [_patient(f"p{i}", int(i >= 4), irds=1 + 2 * int(i >= 4)) for i in range(8)]
    splits = [("r0-f0", ["p0", "p1", "p4", "p5"], ["p2", "p3", "p6", "p7"]),
              ("r0-f1", ["p2", "p3", "p6", "p7"], ["p0", "p1", "p4", "p5"])]  # fmt: skip
    out = clinical_baselines(patients, splits)["irds_alone"]
    assert [f["auroc"] for f in out["folds"]] == [1.0, 1.0]
    assert out["auroc"] == {"mean": 1.0, "sd": 0.0, "n": 2}
    assert out["pooled_auroc"] == 1.0


def test_irds_alone_hand_computed_on_six_patients():
    # Fold A: positives IRDS 3, 2, 4; negatives 1, 2, 3.
    #   3 beats 1, 2 and ties 3 -> 2.5;  2 beats 1, ties 2 -> 1.5;  4 beats all -> 3.
    #   AUROC = 7 / 9.
    # Fold B: positives 2, 2; negatives 2, 2 -> every pair tied -> AUROC 0.5.
    fold_a = [("a1", 1, 3), ("a2", 1, 2), ("a3", 1, 4), ("a4", 0, 1), ("a5", 0, 2), ("a6", 0, 3)]
    fold_b = [("b1", 1, 2), ("b2", 1, 2), ("b3", 0, 2), ("b4", 0, 2)]
    patients = [_patient(pid, y, irds=g) for pid, y, g in fold_a + fold_b]
    ids_a, ids_b = [p[0] for p in fold_a], [p[0] for p in fold_b]
    out = clinical_baselines(patients, [("r0-f0", ids_b, ids_a), ("r0-f1", ids_a, ids_b)])
    irds = out["irds_alone"]
    assert irds["folds"][0]["auroc"] == pytest.approx(7 / 9)
    assert irds["folds"][1]["auroc"] == pytest.approx(0.5)
    assert irds["auroc"]["mean"] == pytest.approx((7 / 9 + 0.5) / 2)
    assert irds["auroc"]["sd"] == pytest.approx((7 / 9 - 0.5) / math.sqrt(2))


def test_patients_without_irds_are_left_out_and_counted():
    patients = [_patient("a", 1, irds=3), _patient("b", 0, irds=1), _patient("c", 1),
                _patient("d", 0, irds=2)]  # fmt: skip
    out = clinical_baselines(patients, [("r0-f0", [], ["a", "b", "c", "d"])])["irds_alone"]
    assert out["n_missing"] == 1 and out["folds"][0]["n_used"] == 3
    assert out["folds"][0]["auroc"] == 1.0  # 3 > 1 and 3 > 2
    assert "1 patient(s) without an IRDS grade" in out["note"]


def test_no_irds_at_all_is_skipped_with_a_reason():
    patients = [_patient(f"p{i}", i % 2, ga=24 + i) for i in range(6)]
    out = clinical_baselines(patients, [("r0-f0", ["p0", "p1", "p2", "p3"], ["p4", "p5"])])
    assert out["irds_alone"]["skipped"] == "no IRDS grade recorded for any patient"
    reg = out["clinical_logistic"]
    assert reg["variables"] == ["gestational age (weeks)"]
    assert reg["skipped_variables"] == {
        "birth weight (g)": "not recorded for any patient",
        "IRDS grade": "not recorded for any patient",
    }


def _ga_cohort():
    # Lower gestational age -> BPD, perfectly: the regression must learn the sign.
    patients = []
    for i in range(12):
        label = int(i < 6)
        ga = 23.0 + i * 0.5
        bw = None if i in (2, 9) else 500.0 + 40 * i  # missing values to impute
        patients.append(_patient(f"p{i}", label, irds=None, ga=ga, bw=bw))
    return patients


def test_logistic_regression_learns_from_the_training_fold_and_imputes():
    patients = _ga_cohort()
    even = [f"p{i}" for i in range(0, 12, 2)]
    odd = [f"p{i}" for i in range(1, 12, 2)]
    out = clinical_baselines(patients, [("r0-f0", even, odd), ("r0-f1", odd, even)])
    reg = out["clinical_logistic"]
    assert reg["variables"] == ["gestational age (weeks)", "birth weight (g)"]
    assert reg["missing"] == {"gestational age (weeks)": 0, "birth weight (g)": 2}
    assert "training fold's median" in reg["imputation"]
    assert [f["auroc"] for f in reg["folds"]] == [1.0, 1.0]
    assert reg["pooled_auroc"] == 1.0
    json.dumps(out, allow_nan=False)  # strict JSON for summary.json


def test_a_training_fold_with_one_outcome_is_reported_not_fitted():
    patients = _ga_cohort()
    pos = [f"p{i}" for i in range(6)]
    neg = [f"p{i}" for i in range(6, 12)]
    reg = clinical_baselines(patients, [("r0-f0", pos, neg)])["clinical_logistic"]
    assert reg["folds"][0]["auroc"] is None
    assert "lacks an outcome" in reg["folds"][0]["note"]


def test_unknown_patient_in_a_fold_is_an_input_error():
    patients = [_patient("a", 1, irds=2), _patient("b", 0, irds=1)]
    with pytest.raises(InputError, match="'zz'"):
        clinical_baselines(patients, [("r0-f0", ["a"], ["b", "zz"])])


def test_baselines_on_a_real_runs_folds():
    # The folds of a real demo-cohort run (tests/data/run_folders), with IRDS grades made
    # up to be perfectly separating: every test fold must then score AUROC 1.0.
    from core.scoring.baselines import baselines_for_folds

    run = Path(__file__).resolve().parents[1] / "data" / "run_folders" / "demo-random"
    infos = [json.loads(p.read_text()) for p in sorted(run.glob("folds/*/fold.json"))]
    with open(run / "predictions.csv") as fh:
        rows = [line.split(",")[:2] for line in fh.read().splitlines()[1:]]
    patients = [_patient(pid, int(y), irds=3 if y == "1" else 1) for pid, y in rows]
    out = baselines_for_folds(patients, infos)
    assert out["n_folds"] == 6
    assert [f["auroc"] for f in out["irds_alone"]["folds"]] == [1.0] * 6
    assert out["clinical_logistic"]["variables"] == ["IRDS grade"]
    assert out["clinical_logistic"]["auroc"]["mean"] == 1.0
