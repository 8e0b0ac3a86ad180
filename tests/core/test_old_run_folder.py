"""A run folder written before RunFolder owned the layout (tests/data/run_folders/v0.1-tiny,
bpd 0.1.0 at commit d97a129) still opens for predict, report, explain and the app.

The fixture keeps every JSON, CSV and JSONL file the old version wrote; the two fold
models (95 MB each) were dropped, so the tests that load models put a state_dict of the
recorded architecture where the old version saved its own (torch.save of a state_dict).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch

from core.cli.main import main
from core.runs.folder import RunFolder

OLD = Path(__file__).resolve().parents[1] / "data" / "run_folders" / "v0.1-tiny"
DEMO = Path(__file__).resolve().parents[2] / "resources" / "demo_cohort"
FOLDS = ("r0-f0", "r0-f1")


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def old_run(tmp_path) -> Path:
    return Path(shutil.copytree(OLD, tmp_path / OLD.name))  # a report is written into it


@pytest.fixture
def old_run_with_models(old_run) -> Path:
    from core.models.registry import build_model

    train = _json(old_run / "config.json")["train"]
    for i, fold_id in enumerate(FOLDS):
        torch.manual_seed(i)  # two different fold models
        model = build_model(train["init"], dropout=train["dropout"])
        torch.save(model.state_dict(), old_run / "folds" / fold_id / "model.pt")
    return old_run


def test_run_folder_reads_every_old_file(old_run):
    run = RunFolder.existing(old_run)
    config = _json(OLD / "config.json")
    assert run.config() == config
    assert run.state()["status"] == "finished"
    assert run.summary() == _json(OLD / "summary.json")
    assert run.cohort()["summary"]["n_patients"] == 10
    assert run.cohort_source()["outcome"]["positive"] == ["PNEUMONIA"]
    assert run.preprocess().resolution == 32
    assert run.threshold_for_new_patients() == 0.5  # the summary's for_new_patients
    folds = run.finished_folds()
    assert [f.fold_id for f in folds] == list(FOLDS)
    for f in folds:
        assert f.info == _json(OLD / "folds" / f.fold_id / "fold.json")
        assert f.folder.read_predictions() == _rows(OLD / "folds" / f.fold_id / "predictions.csv")
        assert sorted(r["patient_id"] for r in f.folder.read_predictions()) == sorted(
            f.test_patients
        )
        assert not f.folder.has_model  # the fixture dropped them
    assert run.predictions() == _rows(OLD / "predictions.csv")
    assert not run.has_final_model()


def test_old_event_stream_reads_whole_and_tails_from_an_offset(old_run):
    run = RunFolder.existing(old_run)
    size = (old_run / "events.jsonl").stat().st_size
    events, offset = run.read_events(0)
    assert offset == size
    assert len(events) == len((old_run / "events.jsonl").read_text().splitlines())
    assert run.read_events(offset) == ([], size)
    # a line still being written is left for the next read
    with open(old_run / "events.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"type": "warning", "time": 1.0, "seq": 999, "message": "hal')
    assert run.read_events(offset) == ([], size)


def test_report_of_an_old_run(old_run, capsys):
    assert main(["report", str(old_run)]) == 0
    html = (old_run / "report.html").read_text(encoding="utf-8")
    assert "10 infants" in html and "v0.1-tiny" in html
    for pid in ("N-0145", "P0152"):  # every patient's out-of-fold row
        assert pid in html


def test_predict_with_an_old_run_is_its_fold_ensemble(old_run_with_models, tmp_path):
    from core.predict.models import load_predictor

    predictor = load_predictor(old_run_with_models)
    assert predictor.kind == "ensemble" and [n for n, _ in predictor.models] == list(FOLDS)
    assert predictor.threshold == 0.5 and predictor.preprocess.resolution == 32
    assert predictor.outcome["positive"] == ["PNEUMONIA"]
    image = DEMO / "images" / "NORMAL" / "IM-0145-0001.jpeg"
    out = tmp_path / "pred.csv"
    assert main(["predict", str(old_run_with_models), str(image), "--out", str(out)]) == 0
    (row,) = _rows(out)
    assert 0.0 <= float(row["prob"]) <= 1.0
    assert row["model"] == "ensemble of 2 fold models of v0.1-tiny"


def test_explain_reads_an_old_runs_folds(old_run_with_models):
    from core.explain.oof import RunExplainer

    ex = RunExplainer.open(old_run_with_models)
    assert sorted(ex.folds) == list(FOLDS)
    for fold_id in FOLDS:
        recorded = _rows(OLD / "folds" / fold_id / "predictions.csv")
        for row in recorded:
            pid = row["patient_id"]
            assert ex.fold_of(pid, repeat=0) == fold_id
            assert ex.fold_prob(fold_id, pid) == float(row["prob"])
            assert ex.label(fold_id, pid) == int(row["label"])
        assert isinstance(ex.model(fold_id), torch.nn.Module)


def test_the_app_lists_an_old_run(old_run):
    from bpd_gui.jobs import job_client, job_queue

    assert job_queue.is_run_dir(old_run)
    assert job_client.read_state(old_run)["status"] == "finished"
    assert job_client.read_summary(old_run)["n_patients"] == 10


def test_an_old_config_reads_as_a_run_config(old_run):
    rc = RunFolder.existing(old_run).run_config()
    assert rc.train.resolution == 32 and rc.train.cv_folds == 2 and rc.train.init == "random"
    assert rc.cohort.to_json()["outcome"]["negative"] == ["NORMAL"]
    assert rc.options.report and not rc.options.final_model
    assert (
        rc.to_json()["cohort_source"]["table"]
        == _json(OLD / "config.json")["cohort_source"]["table"]
    )
