"""The HTML report of a run folder (written by tests/core/runfolder_factory.py)."""

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from core.cli.main import main
from core.cohort.model import ClinicalValues, ImageRecord, Patient
from core.errors import InputError
from core.evaluation.report import write_report
from core.evaluation.run_data import load_run
from core.scoring.baselines import clinical_baselines
from tests.core.runfolder_factory import make_run_folder

EVIL = "<script>alert(1)</script>"


@pytest.fixture
def run_dir(tmp_path):
    return make_run_folder(tmp_path / "run", repeats=2, folds=3, n_patients=30, n_positive=12)


def _oof(run_dir):
    with open(run_dir / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return np.array([int(r["label"]) for r in rows]), np.array([float(r["prob"]) for r in rows])


def test_report_has_every_section_and_plot(run_dir):
    path = write_report(run_dir)
    assert path == run_dir / "report.html"
    html = path.read_text(encoding="utf-8")
    for heading in (
        "Summary",
        "ROC and precision-recall curves",
        "Calibration",
        "Confusion matrix",
        "Clinical baselines",
        "Per-fold results",
        "Training curves per fold",
        "Grad-CAM: the most confident errors and successes",
        "Cohort",
        "Out-of-fold predictions per infant",
        "Configuration",
    ):
        assert f"<h2>{heading}" in html, heading
    titles = re.findall(r'<svg [^>]*aria-label="([^"]+)"', html)
    assert titles == [
        "ROC curve (out-of-fold)",
        "Precision-recall (out-of-fold)",
        "Calibration (reliability)",
        "Training loss",
        "Test-fold AUROC per epoch",
    ]
    assert "Research use only" in html
    # Self-contained: nothing to fetch, nothing to run.
    assert "<script" not in html and "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )
    assert "https://" not in html


def test_report_numbers_come_from_the_run(run_dir):
    html = write_report(run_dir).read_text(encoding="utf-8")
    y, p = _oof(run_dir)
    assert f"Pooled out-of-fold AUROC <b>{roc_auc_score(y, p):.3f}</b>" in html
    summary = json.loads((run_dir / "summary.json").read_text())
    auroc = summary["auroc"]
    assert f"{auroc['mean']:.3f} ± {auroc['sd']:.3f}" in html
    # Confusion matrix at 0.5 on the per-infant mean probability.
    tp = int(((p >= 0.5) & (y == 1)).sum())
    fn = int(((p < 0.5) & (y == 1)).sum())
    assert f"<td class=l>actual positive</td><td>{tp}</td><td>{fn}</td>" in html
    # One per-infant row per patient; 2 cohort exclusions by reason.
    assert html.count("<td class=l>P0") == 30
    assert "<td class=l>outcome_not_recorded</td><td>1</td>" in html


def test_every_input_string_is_escaped(tmp_path):
    ids = [EVIL] + [f"P{i}" for i in range(1, 20)]
    run = make_run_folder(tmp_path / "run", patient_ids=ids, n_positive=8)
    cohort = json.loads((run / "cohort.json").read_text())
    cohort["summary"]["outcome_column"] = "<b>bpd</b>"
    cohort["exclusions"][0]["message"] = "<img src=x onerror=alert(2)>"
    (run / "cohort.json").write_text(json.dumps(cohort))
    config = json.loads((run / "config.json").read_text())
    config["cohort_source"]["table"] = "/data/</pre><script>x()</script>.csv"
    (run / "config.json").write_text(json.dumps(config))
    html = write_report(run).read_text(encoding="utf-8")
    assert "<script" not in html and "<img" not in html and "<b>bpd" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html


def test_report_shows_baselines_beside_the_image_model(tmp_path):
    run = make_run_folder(tmp_path / "run", n_patients=30, n_positive=12)
    data = load_run(run)
    labels = dict(zip(data.oof.patient_ids, data.oof.labels.tolist(), strict=True))
    patients = [
        Patient(
            pid,
            y,
            str(y),
            (ImageRecord(Path(f"/x/{pid}.png"), 1),),
            ClinicalValues(gestational_age_weeks=24 + (i % 5), irds_grade=1 + (i + y) % 4),
        )
        for i, (pid, y) in enumerate(labels.items())
    ]
    splits = [(f.fold_id, f.train_patients, f.test_patients) for f in data.folds]
    baselines = clinical_baselines(patients, splits)
    summary = json.loads((run / "summary.json").read_text())
    summary["baselines"] = baselines
    (run / "summary.json").write_text(json.dumps(summary))
    html = write_report(run).read_text(encoding="utf-8")
    irds = baselines["irds_alone"]
    assert "<td class=l>IRDS grade alone</td>" in html
    assert f"{irds['auroc']['mean']:.3f} ± {irds['auroc']['sd']:.3f}" in html
    assert "Logistic regression on clinical variables" in html
    assert "birth weight (g) (not recorded for any patient)" in html


def test_report_of_an_unfinished_run_uses_finished_folds(tmp_path):
    run = make_run_folder(tmp_path / "run", repeats=2, folds=3)
    (run / "predictions.csv").unlink()
    (run / "summary.json").unlink()
    fold = json.loads((run / "folds/r1-f2/fold.json").read_text())
    fold["finished"] = False
    (run / "folds/r1-f2/fold.json").write_text(json.dumps(fold))
    html = write_report(run, tmp_path / "out" / "r.html").read_text(encoding="utf-8")
    assert "5 finished folds over 2 repeat(s)" in html
    assert html.count("<td class=l>P0") == 30  # every patient was tested in repeat 0


def test_per_fold_thresholds_sum_the_fold_matrices(tmp_path):
    run = make_run_folder(tmp_path / "run")
    path = run / "folds/r0-f1/fold.json"
    fold = json.loads(path.read_text())
    fold["threshold"] = 0.41
    path.write_text(json.dumps(fold))
    html = write_report(run).read_text(encoding="utf-8")
    assert "sums the folds" in html


def test_report_write_is_atomic_and_leaves_no_temp_files(run_dir):
    write_report(run_dir)
    write_report(run_dir)
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]


def test_cli_report_prints_the_path(run_dir, capsys):
    assert main(["report", str(run_dir)]) == 0
    assert capsys.readouterr().out.strip() == str(run_dir / "report.html")
    out = run_dir / "elsewhere.html"
    assert main(["report", str(run_dir), "--html", str(out)]) == 0
    assert out.exists()


def test_missing_run_folder_is_an_input_error(tmp_path, capsys):
    with pytest.raises(InputError, match="no such directory"):
        write_report(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "not a run folder (no config.json)" in capsys.readouterr().err
    started = make_run_folder(tmp_path / "started")  # a run without a finished fold yet
    shutil.rmtree(started / "folds")
    assert main(["report", str(started)]) == 2
    assert "no finished fold" in capsys.readouterr().err


def test_patients_untested_in_a_repeat_show_a_dash(run_dir):
    # The paper's CV scheme leaves some negatives untested in a repeat: empty prob_r cell.
    path = run_dir / "predictions.csv"
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    first = lines[1].split(",")
    first[header.index("prob_r1")] = ""
    first[header.index("n_repeats")] = "1"
    first[header.index("prob")] = first[header.index("prob_r0")]
    path.write_text("\n".join([lines[0], ",".join(first), *lines[2:]]) + "\n")
    html = write_report(run_dir).read_text(encoding="utf-8")
    row = re.search(rf"<td class=l>{first[0]}</td>.*?</tr>", html).group(0)
    assert row.endswith("<td>–</td></tr>")


def test_report_computes_missing_baselines_from_the_cohort_table(tmp_path):
    # A cohort table with clinical columns and real images, as `bpd train` would have read.
    demo = Path(__file__).resolve().parents[2] / "resources" / "demo_cohort" / "images"
    images = sorted((demo / "NORMAL").glob("*.jpeg"))[:30]
    (tmp_path / "images").mkdir()
    ids = [f"P{i:03d}" for i in range(30)]
    lines = ["patient_id,image,bpd_grade,gestational_age,birth_weight,irds"]
    for i, pid in enumerate(ids):
        shutil.copy(images[i], tmp_path / "images" / f"{pid}.jpeg")
        grade = "severe" if i < 12 else "mild"
        irds = 3 if i < 12 else 1 + (i % 2)  # IRDS separates the outcomes perfectly
        lines.append(f"{pid},images/{pid}.jpeg,{grade},{24 + i % 5},{600 + 10 * i},{irds}")
    table = tmp_path / "cohort.csv"
    table.write_text("\n".join(lines) + "\n")
    source = {
        "table": str(table),
        "images_root": None,
        "mapping": None,
        "outcome": {"column": "bpd_grade", "positive": ["severe"], "negative": ["mild"]},
    }
    run = make_run_folder(tmp_path / "run", patient_ids=ids, n_positive=12, cohort_source=source)
    html = write_report(run).read_text(encoding="utf-8")
    assert "Baselines computed now from" in html
    row = re.search(r"<td class=l>IRDS grade alone</td>.*?</tr>", html).group(0)
    assert "<td>1.000 ± 0.000</td><td>1.000</td>" in row
    assert "Logistic regression on clinical variables" in html


def test_report_says_why_baselines_are_missing(run_dir):
    html = write_report(run_dir).read_text(encoding="utf-8")
    assert "No clinical baselines: the cohort table could not be re-read" in html
