"""`bpd study` end to end on a few real demo radiographs (32 px, 1 epoch, 2 folds):
every arm tests the same patients in every fold with the same seeds, an arm without
its weights is skipped with a line saying so, and a study killed in its second arm and
resumed gives the same table as one that ran through."""

from __future__ import annotations

import json

import pytest

from core.cli.main import main
from core.study.folder import StudyFolder
from tests.core.test_training_cli import _tiny_table

TRAINED = ("random-linear-probe", "random-progressive")
SKIPPED = ("imagenet-linear-probe", "imagenet-progressive")


class Killed(BaseException):
    """Stands for SIGKILL: the process ends mid-fold, without a graceful stop."""


@pytest.fixture()
def offline(monkeypatch, tmp_path):
    """No pretrained weights on this machine and no way to fetch them."""
    import core.models.weights as weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(weights, "_host_reachable", lambda url, timeout=0: "offline (test)")


def _args(table, root, out):
    return [
        "study", str(table), "--images-root", str(root), "--outcome", "diagnosis",
        "--positive", "PNEUMONIA", "--negative", "NORMAL", "--preset", "cpu-fast",
        "--inits", "random", "imagenet", "--strategies", "linear-probe", "progressive",
        "--resolution", "32", "--folds", "2", "--repeats", "1", "--epochs", "1",
        "--probe-epochs", "1", "--batch-size", "4", "--seed", "3", "--device", "cpu",
        "--precision", "fp32", "--no-report", "--out", str(out), "--quiet",
    ]  # fmt: skip


def _table(stdout: str) -> list[str]:
    """The printed results table, without the lines naming the folder."""
    return [line for line in stdout.splitlines() if not line.startswith("study ")]


@pytest.mark.slow
def test_a_killed_study_resumes_to_the_same_table(tmp_path, studio_home, offline, capsys,
                                                  monkeypatch):  # fmt: skip
    table, root = _tiny_table(tmp_path, 4)
    whole = tmp_path / "whole"
    assert main(_args(table, root, whole)) == 0
    out = capsys.readouterr()
    uninterrupted = _table(out.out)
    assert f"study report: {whole / 'report.html'}" in out.out
    assert "SKIPPED, pretrained weights for init 'imagenet' are not on this machine" in out.err

    study = StudyFolder.existing(whole)
    assert [study.arm_status(a) for a in TRAINED] == ["finished", "finished"]
    assert [study.arm_status(a) for a in SKIPPED] == ["skipped", "skipped"]
    assert "offline (test)" in study.skipped()["imagenet-progressive"]
    # every arm: the same patients in every test fold, the same seeds and folds
    folds, recipes = {}, set()
    for name in TRAINED:
        run = study.arm_run(name)
        folds[name] = {f.fold_id: f.test_patients for f in run.finished_folds()}
        t = run.config()["train"]
        recipes.add((t["seed"], t["cv_folds"], t["cv_repeats"], t["cv_scheme"], t["resolution"]))
    assert folds[TRAINED[0]] == folds[TRAINED[1]] and len(folds[TRAINED[0]]) == 2
    assert len(recipes) == 1 and next(iter(recipes))[:3] == (3, 2, 1)
    assert study.arm_run("random-progressive").config()["train"]["strategy"] == "progressive"
    html = study.report_path.read_text()
    assert "All 2 finished arms tested the same patients in each of the 2 folds" in html
    assert "<svg" in html and "Corrected t (folds)" in html

    # the same study, killed after the first fold of its second arm, then resumed
    import core.runs.runner as runner

    real_run_cv = runner.run_cv

    def killing_run_cv(run, *a, on_event=None, **kw):
        def on(event):
            if event.type == "fold_finished" and run.path.name == TRAINED[1]:
                raise Killed("test kill")

        return real_run_cv(run, *a, on_event=on, **kw)

    monkeypatch.setattr(runner, "run_cv", killing_run_cv)
    broken = tmp_path / "broken"
    with pytest.raises(Killed):
        main(_args(table, root, broken))
    monkeypatch.setattr(runner, "run_cv", real_run_cv)
    study = StudyFolder.existing(broken)
    assert study.arm_status(TRAINED[0]) == "finished"
    assert study.arm_status(TRAINED[1]) == "unfinished"
    assert len(study.arm_run(TRAINED[1]).finished_folds()) == 1
    capsys.readouterr()
    assert main(["resume", str(broken), "--quiet"]) == 0  # `bpd resume` knows a study
    out = capsys.readouterr()
    assert f"arm 1/4 {TRAINED[0]}: finished earlier" in out.err
    assert f"arm 2/4 {TRAINED[1]}: resuming" in out.err
    assert _table(out.out) == uninterrupted
    for name in TRAINED:  # the same predictions, to the last digit
        a = {f.fold_id: f.folder.read_predictions() for f in
             StudyFolder(whole).arm_run(name).finished_folds()}  # fmt: skip
        b = {f.fold_id: f.folder.read_predictions() for f in study.arm_run(name).finished_folds()}
        assert a == b
    # a finished study resumes to its table without training again
    assert main(["study", "resume", str(broken), "--quiet"]) == 0
    assert _table(capsys.readouterr().out) == uninterrupted


def test_study_writes_its_config_for_the_app(tmp_path, capsys):
    table, root = _tiny_table(tmp_path, 3)
    path = tmp_path / "study.json"
    args = _args(table, root, tmp_path / "s")
    assert main([*args, "--write-config", str(path)]) == 0
    data = json.loads(path.read_text())
    assert data["kind"] == "bpd-study" and data["inits"] == ["random", "imagenet"]
    assert data["train"]["resolution"] == 32 and data["preset"] == "cpu-fast"
    assert not (tmp_path / "s").exists()
    # read back, with a flag beside it
    again = tmp_path / "again.json"
    assert main(["study", "--config", str(path), "--inits", "random",
                 "--write-config", str(again)]) == 0  # fmt: skip
    data2 = json.loads(again.read_text())
    assert data2["inits"] == ["random"] and data2["train"] == data["train"]
    assert data2["cohort_source"] == data["cohort_source"]
