"""`bpd train` end to end on a few real demo radiographs, and its input errors."""

from __future__ import annotations

import csv
import json

import pytest

from core import paths
from core.cli.main import main


def _tiny_table(tmp_path, n_per_class=6):
    table = paths.demo_cohort_table()
    with open(table, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    keep = [r for r in rows if r["diagnosis"] == "NORMAL"][:n_per_class]
    keep += [r for r in rows if r["diagnosis"] == "PNEUMONIA"][:n_per_class]
    out = tmp_path / "tiny.csv"
    with open(out, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(keep)
    return out, table.parent


@pytest.mark.slow
def test_bpd_train_writes_a_complete_run(tmp_path, studio_home, capsys):
    table, root = _tiny_table(tmp_path)
    out = tmp_path / "run"
    args = [
        "train", str(table), "--images-root", str(root), "--outcome", "diagnosis",
        "--positive", "PNEUMONIA", "--negative", "NORMAL", "--preset", "cpu-fast",
        "--init", "random",
        "--resolution", "32", "--folds", "2", "--epochs", "1", "--probe-epochs", "2",
        "--batch-size", "4", "--seed", "5", "--out", str(out), "--quiet",
    ]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"run folder: {out}" in printed and "auroc" in printed
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["resolution"] == 32 and config["train"]["epochs"] == 1
    assert config["seed"] == 5 and config["versions"]["torch"]
    assert config["cohort_source"]["outcome"]["positive"] == ["PNEUMONIA"]
    assert config["preprocess"]["resolution"] == 32
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_folds"] == 2 and summary["n_patients"] >= 10
    assert "baselines" in summary
    assert json.loads((out / "state.json").read_text())["status"] == "finished"
    assert json.loads((out / "cohort.json").read_text())["summary"]["n_patients"] >= 10
    # a finished run resumes to its summary without training again
    assert main(["resume", str(out), "--quiet"]) == 0


def test_bad_outcome_value_is_input_error(tmp_path, studio_home, capsys):
    table, root = _tiny_table(tmp_path, 3)
    code = main(["train", str(table), "--images-root", str(root), "--outcome", "diagnosis",
                 "--positive", "BPD", "--folds", "2", "--out", str(tmp_path / "r")])  # fmt: skip
    assert code == 2
    assert not (tmp_path / "r").exists()


def test_resume_of_a_non_run_is_an_error(tmp_path, studio_home, capsys):
    assert main(["resume", str(tmp_path)]) == 2  # like report and compare (issue 14)
    assert "not a run folder" in capsys.readouterr().err
