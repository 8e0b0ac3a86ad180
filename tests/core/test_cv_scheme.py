"""--cv-scheme paper|stratified: the flag reaches the TrainConfig, the folds, the run
summary's tested counts and the report; `paper` is the paper preset's default."""

from __future__ import annotations

import numpy as np
import pytest

from core.cli.main import build_parser
from core.cli.train_options import run_config_from_args
from core.paths import demo_cohort_table
from core.runs.summary import fold_coverage
from core.training.data import TrainingData
from core.training.folds import make_folds

OUTCOME = ["--outcome", "diagnosis", "--positive", "PNEUMONIA", "--negative", "NORMAL"]


def _train_args(*argv: str):
    return run_config_from_args(build_parser().parse_args(["train", *argv]))


def test_flag_and_preset_defaults_reach_the_train_config():
    table = str(demo_cohort_table())
    assert _train_args(table, *OUTCOME).train.cv_scheme == "paper"  # paper preset
    assert _train_args(table, *OUTCOME, "--preset", "cpu-fast").train.cv_scheme == "stratified"
    flagged = _train_args(table, *OUTCOME, "--cv-scheme", "stratified")
    assert flagged.train.cv_scheme == "stratified"
    fast = _train_args(table, *OUTCOME, "--preset", "cpu-fast", "--cv-scheme", "paper",
                       "--probe-augment")  # fmt: skip
    assert fast.train.cv_scheme == "paper" and fast.train.probe_augment
    assert not _train_args(table, *OUTCOME, "--no-probe-augment").train.probe_augment
    with pytest.raises(SystemExit):
        _train_args(table, *OUTCOME, "--cv-scheme", "random")


def _folds_as_records(labels, scheme, repeats=2):
    folds = make_folds(labels, 5, repeats, 42, scheme)
    return [{"repeat": f.repeat, "test_patients": [f"p{i}" for i in f.test]} for f in folds]


def test_paper_folds_leave_negatives_untested_and_the_summary_counts_them():
    labels = np.array([1] * 10 + [0] * 25)
    testing = fold_coverage(_folds_as_records(labels, "paper", 6), 35, 10, "paper")
    assert [r["tested"] for r in testing["per_repeat"]] == [20] * 6
    assert [r["not_tested"] for r in testing["per_repeat"]] == [15] * 6
    ever = {p for r in _folds_as_records(labels, "paper", 6) for p in r["test_patients"]}
    assert testing["never_tested"] == 35 - len(ever) > 0
    assert "15 negatives untested" in testing["why"] and "1:1" in testing["why"]


def test_stratified_folds_test_everyone_once_per_repeat():
    labels = np.array([1] * 10 + [0] * 25)
    testing = fold_coverage(_folds_as_records(labels, "stratified"), 35, 10, "stratified")
    assert [r["tested"] for r in testing["per_repeat"]] == [35, 35]
    assert testing["never_tested"] == 0 and "every patient" in testing["why"]


def _drop_patients(data: TrainingData, drop: set[int]) -> TrainingData:
    keep_p = [p for p in range(len(data.labels)) if p not in drop]
    new_index = {p: i for i, p in enumerate(keep_p)}
    keep_img = np.array([i for i, p in enumerate(data.image_patient) if int(p) in new_index])
    return TrainingData(
        data.pixels[keep_img],
        np.array([new_index[int(p)] for p in data.image_patient[keep_img]]),
        data.image_rank[keep_img],
        data.labels[keep_p],
        [data.patient_ids[p] for p in keep_p],
    )


@pytest.mark.slow
def test_a_paper_scheme_run_records_balanced_folds_and_its_untested_patients(tmp_path):
    from core.evaluation.report import write_report
    from core.runs.folder import RunFolder
    from core.runs.runner import run_cv
    from core.training.config import paper_preset
    from tests.core.test_training_run import demo_subset, random_model

    full = demo_subset(tmp_path, 8, 32)
    positives = [p for p in range(len(full.labels)) if full.labels[p] == 1]
    data = _drop_patients(full, set(positives[:4]))  # 4 positive, 8 negative
    cfg = paper_preset().replace(
        init="random", resolution=32, strategy="probe", probe_epochs=1, probe_augment=False,
        batch_size=4, cv_folds=2, cv_repeats=2, device="cpu", precision="fp32",
        eval_every_epoch=False,
    )  # fmt: skip
    assert cfg.cv_scheme == "paper"
    run = RunFolder.create(tmp_path / "run", {"train": cfg.to_json()}, {"summary": {}})
    summary = run_cv(run, data, cfg, random_model)
    label = dict(zip(data.patient_ids, data.labels, strict=True))
    for r in range(2):
        for f in range(2):
            test = run.fold(f"r{r}-f{f}").read()["test_patients"]
            assert sorted(label[p] for p in test) == [0, 0, 1, 1]  # 1:1
    testing = summary["testing"]
    assert testing["cv_scheme"] == "paper"
    assert [r["tested"] for r in testing["per_repeat"]] == [8, 8]
    assert [r["not_tested"] for r in testing["per_repeat"]] == [4, 4]
    assert summary["ensemble_auroc"] == summary["pooled_auroc"]
    assert "ensemble" in summary["ensemble_auroc_meaning"]
    html = write_report(run.path).read_text()
    assert "repeat 0: 8, repeat 1: 8" in html and "ensemble AUROC" in html
    assert f"never tested: {testing['never_tested']}" in html
