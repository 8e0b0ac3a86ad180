"""Report and compare on run folders written by the real training engine (demo cohort)."""

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from core.evaluation.compare import compare_runs
from core.evaluation.report import write_report
from core.evaluation.run_data import load_run

RUNS = Path(__file__).resolve().parents[1] / "data" / "run_folders"


@pytest.fixture
def runs(tmp_path):
    # Copies: the report is written into the run folder.
    return [shutil.copytree(RUNS / name, tmp_path / name) for name in ("demo-random", "demo-full")]


def test_real_run_folder_reads_completely(runs):
    run = load_run(runs[0])
    assert len(run.folds) == 6 and run.n_repeats == 2
    assert len(run.oof.patient_ids) == 163 and int(run.oof.labels.sum()) == 60
    for fold in run.folds:  # the fold file and its predictions agree
        assert sorted(fold.patient_ids) == sorted(fold.test_patients)
        assert fold.metrics["auroc"] == pytest.approx(roc_auc_score(fold.labels, fold.probs))
    assert run.summary["pooled_auroc"] == pytest.approx(
        roc_auc_score(run.oof.labels, run.oof.probs)
    )


def test_report_of_a_real_run_has_every_plot_with_data(runs):
    html = write_report(runs[0]).read_text(encoding="utf-8")
    svgs = re.findall(r"<svg .*?</svg>", html, flags=re.S)
    assert len(svgs) == 5  # ROC, precision-recall, calibration, loss, AUROC per epoch
    for svg in svgs:  # every plot has at least one drawn line with points
        assert re.search(r'<polyline points="[\d., ]{20,}"', svg)
    assert "163 infants" in html
    # the probe, then fine-tuning from layer3, then layer2: a band and two marks per curve
    loss, auroc = svgs[3], svgs[4]
    for svg in (loss, auroc):
        assert svg.count('class="band"') == 1 and svg.count('class="mark"') == 2
        assert ">fine-tune: layer3</text>" in svg and ">layer2</text>" in svg
    assert "a change of task, not divergence" in html
    infants = html.split("Out-of-fold predictions per infant</h2>")[1].split("</table>")[0]
    assert infants.count("<tr") == 1 + 163  # header + one row per infant


def test_compare_two_real_runs_on_the_same_folds(runs):
    res = compare_runs(*runs)
    assert res["n_patients"] == 163
    assert len(res["folds"]["keys"]) == 6 and len(res["repeats"]["keys"]) == 2
    # Two repeats can never reach p < 0.05 with an exact test: smallest p is 2/4.
    assert res["repeats"]["smallest_possible_p"] == 0.5
    d = res["delong"]
    assert d["auc_a"] == pytest.approx(load_run(runs[0]).summary["pooled_auroc"])
    assert d["ci_low"] < d["difference"] < d["ci_high"]
    assert np.isfinite(d["z"])
