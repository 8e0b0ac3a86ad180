"""What the Review page lists (core.explain.review): every tested infant with the run's
out-of-fold probability, TP/FP/TN/FN at its threshold, the fold that never saw them,
clinical values and images from the recorded cohort table; a moved run still opens."""

from __future__ import annotations

import csv
import shutil

from core.explain.overlay import outcome_class
from core.explain.review import review_table, reviewable_runs
from tests.core.runfolder_factory import make_run_folder

FILES = ["images/IM-0115-0001.jpeg", "images/person1_bacteria_1.jpeg",
         "dicom/rsna_cr_jpeg_baseline_mono2.dcm"]  # fmt: skip
SEX = {"w": "F", "m": "M"}


def _cohort(tmp_path, data_dir):
    """30 patients with clinical columns (German headers), each with its own copy of a
    real radiograph (two JPEGs and a DICOM in turn)."""
    root = tmp_path / "images"
    root.mkdir()
    table = tmp_path / "cohort.csv"
    with open(table, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["patient_id", "image", "bpd_grade", "Gestationsalter", "Geburtsgewicht",
                    "IRDS", "Geschlecht"])  # fmt: skip
        for i in range(30):
            src = data_dir / FILES[i % 3]
            name = f"P{i:03d}{src.suffix}"
            shutil.copyfile(src, root / name)
            w.writerow([f"P{i:03d}", name, "severe" if i < 12 else "mild",
                        f"{24 + i % 4}+{i % 7}", 600 + 10 * i, ["0", "I", "II", "III"][i % 4],
                        "w" if i % 2 else "m"])  # fmt: skip
    outcome = {"column": "bpd_grade", "positive": ["severe"], "negative": ["mild"]}
    return {"table": str(table), "images_root": str(root), "mapping": None, "outcome": outcome}


def test_rows_carry_outcome_fold_clinical_values_and_images(tmp_path, data_dir):
    run = make_run_folder(tmp_path / "run", cohort_source=_cohort(tmp_path, data_dir))
    table = review_table(run)
    assert table.cohort_problem is None and table.n_repeats == 2 and table.threshold == 0.5
    assert not table.has_models  # the factory writes predictions, no model.pt
    assert len(table.rows) == 30
    with open(run / "predictions.csv", encoding="utf-8", newline="") as fh:
        pooled = {r["patient_id"]: r for r in csv.DictReader(fh)}
    for row in table.rows:
        assert row.prob == float(pooled[row.patient_id]["prob"])
        assert row.label == int(pooled[row.patient_id]["label"])
        assert row.outcome == outcome_class(row.label, row.prob, 0.5)
        assert row.fold.startswith("r0-")  # the repeat-0 fold whose test set held them
    p7 = table.row("P007")
    assert p7.gestational_age_weeks == 27 + 0 / 7 and p7.birth_weight_g == 670
    assert p7.irds_grade == 3 and p7.sex == SEX["w"]
    assert [p.name for p in p7.images] == ["P007.jpeg"]
    assert table.row("P002").images[0].suffix == ".dcm"
    assert {r.outcome for r in table.rows} <= {"TP", "FP", "TN", "FN"}


def test_a_moved_run_still_opens_without_images(tmp_path):
    run = make_run_folder(tmp_path / "run")  # its table is on another machine
    table = review_table(run)
    assert "could not be read" in table.cohort_problem
    assert len(table.rows) == 30 and all(not r.images for r in table.rows)


def test_only_finished_runs_are_listed_newest_first(tmp_path):
    runs = tmp_path / "runs"
    make_run_folder(runs / "20260101-000000-a")
    make_run_folder(runs / "20260202-000000-b")
    (runs / "20260303-000000-running").mkdir()
    (runs / "20260303-000000-running" / "state.json").write_text('{"status": "running"}')
    assert [p.name for p in reviewable_runs(runs)] == ["20260202-000000-b", "20260101-000000-a"]
