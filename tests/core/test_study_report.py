"""The study folder, its config and its report, on run folders written from computed
numbers (tests/core/runfolder_factory.py): no training, so these run in seconds."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from core.cli.main import main
from core.cohort.source import CohortSource, OutcomeSpec
from core.errors import InputError
from core.evaluation.statistics import corrected_resampled_t
from core.study.config import StudyConfig, read_study_config
from core.study.folder import StudyFolder
from core.study.report import write_study_report
from core.training.config import preset
from tests.core.runfolder_factory import make_run_folder

SHAPE = {"repeats": 3, "folds": 3, "n_patients": 36, "n_positive": 14}
COHORT = CohortSource("/data/site/cohort.csv", OutcomeSpec("bpd", ("moderate", "severe")))


def _config(**changes) -> StudyConfig:
    base = {
        "cohort": COHORT,
        "train": preset("cpu-fast").replace(cv_folds=3, cv_repeats=3),
        "inits": ("xrv", "imagenet"),
        "strategies": ("probe+progressive", "full"),
        "preset": "cpu-fast",
    }
    return StudyConfig(**{**base, **changes})


def test_study_config_round_trips_and_builds_the_grid(tmp_path):
    cfg = _config(epochs_without_probe=12)
    again = StudyConfig.from_json(json.loads(json.dumps(cfg.to_json())))
    assert again == cfg
    arms = cfg.arms()
    assert [a.name for a in arms] == [
        "xrv-probe+progressive", "xrv-full", "imagenet-probe+progressive", "imagenet-full",
    ]  # fmt: skip
    by_name = {a.name: a.train for a in arms}
    assert by_name["xrv-full"].strategy == "full" and by_name["xrv-full"].epochs == 12
    assert not by_name["xrv-full"].cutmix_finetune.enabled
    assert by_name["imagenet-probe+progressive"].cutmix_finetune.enabled
    assert by_name["imagenet-probe+progressive"].epochs == cfg.train.epochs
    # everything that decides folds and seeds is the same in every arm
    keys = ("cv_folds", "cv_repeats", "cv_scheme", "seed", "resolution", "batch_size")
    assert len({tuple(getattr(t, k) for k in keys) for t in by_name.values()}) == 1
    # `paper` arms without the probe train the paper's 30 epochs (10 probe + 20)
    paper = _config(train=preset("paper"), preset="paper")
    assert {a.train.epochs for a in paper.arms() if a.strategy == "full"} == {30}
    # a config file with a relative table path is read relative to its folder
    (tmp_path / "sub").mkdir()
    path = _config(cohort=COHORT.replace(table="cohort.csv")).write(tmp_path / "sub" / "s.json")
    assert read_study_config(path).cohort.table == str(tmp_path / "sub" / "cohort.csv")


def test_study_config_refuses_unknown_arms():
    with pytest.raises(InputError, match="unknown strategy 'sideways'"):
        _config(strategies=("full", "sideways"))
    with pytest.raises(InputError, match="unknown init"):
        _config(inits=("resnet",))
    with pytest.raises(InputError, match="not a study config"):
        StudyConfig.from_json({"train": {}})


def _study(tmp_path, with_baselines=True):
    study = StudyFolder.create(tmp_path / "study", _config())
    baselines = None
    if with_baselines:
        baselines = {
            "irds_alone": {
                "title": "IRDS grade alone", "auroc": {"mean": 0.57, "sd": 0.1, "n": 9},
                "pooled_auroc": 0.56,
                "folds": [{"fold_id": f"r{r}-f{f}", "auroc": 0.5 + 0.02 * (r + f)}
                          for r in range(3) for f in range(3)],
            },
        }  # fmt: skip
    make_run_folder(study.arm_path("xrv-probe+progressive"), signal=1.6, score_seed=1,
                    baselines=baselines, **SHAPE)  # fmt: skip
    make_run_folder(study.arm_path("xrv-full"), signal=0.9, score_seed=2,
                    baselines=baselines, **SHAPE)  # fmt: skip
    make_run_folder(study.arm_path("imagenet-full"), signal=0.3, score_seed=3,
                    init="imagenet", baselines=baselines, **SHAPE)  # fmt: skip
    study.set_skipped("imagenet-probe+progressive", "weights <b>missing</b>")
    return study


def test_study_report_has_the_table_the_three_tests_and_a_forest_plot(tmp_path):
    study = _study(tmp_path)
    assert study.arm_status("xrv-full") == "finished"
    assert study.arm_status("imagenet-probe+progressive") == "skipped"
    html = write_study_report(study).read_text()
    assert "3 of 4 arms finished" in html and "1 skipped" in html
    assert "All 3 finished arms tested the same patients in each of the 9 folds" in html
    # the strongest synthetic arm is the best; the others and the baseline are compared
    assert "<b>xrv-probe+progressive</b> (best)" in html
    for name in ("Wilcoxon (repeats)", "Corrected t (folds)", "DeLong (pooled)"):
        assert name in html
    assert "IRDS grade alone" in html and "irds_alone" in html
    assert html.count("<svg") == 1 and "forest plot" in html
    # input strings are escaped, never markup
    assert "weights &lt;b&gt;missing&lt;/b&gt;" in html and "<b>missing</b>" not in html


def test_study_report_numbers_match_the_statistics(tmp_path):
    from core.evaluation.run_data import load_run
    from core.evaluation.study_report_stats import compare_arms, fold_aurocs

    study = _study(tmp_path, with_baselines=False)
    best = load_run(study.arm_path("xrv-probe+progressive"))
    other = load_run(study.arm_path("xrv-full"))
    c = compare_arms(best, other)
    a, b = fold_aurocs(best), fold_aurocs(other)
    n_train = sum(len(f.train_patients) for f in best.folds) / len(best.folds)
    n_test = sum(len(f.test_patients) for f in best.folds) / len(best.folds)
    ref = corrected_resampled_t([a[k] for k in a], [b[k] for k in a], n_train=n_train,
                                n_test=n_test)  # fmt: skip
    assert c["corrected_t"]["t"] == pytest.approx(ref.t)
    assert c["n_repeats"] == 3 and c["wilcoxon"]["smallest_possible_p"] == pytest.approx(0.25)
    html = write_study_report(study).read_text()
    cell = f"{ref.mean_difference:.3f} [{ref.ci_low:.3f}, {ref.ci_high:.3f}]"
    assert cell in html


def test_a_baseline_that_could_not_be_computed_is_said_so(tmp_path):
    study = StudyFolder.create(tmp_path / "study", _config(inits=("xrv",)))
    none = {"irds_alone": {"title": "IRDS grade alone", "skipped": "no IRDS grade recorded"}}
    for name in ("xrv-probe+progressive", "xrv-full"):
        make_run_folder(study.arm_path(name), baselines=none, **SHAPE)
    html = write_study_report(study).read_text()
    assert "IRDS grade alone: not computed (no IRDS grade recorded)" in html


def test_unpaired_arms_are_named_not_compared(tmp_path):
    study = StudyFolder.create(tmp_path / "study", _config(inits=("xrv",)))
    make_run_folder(study.arm_path("xrv-probe+progressive"), signal=1.5, **SHAPE)
    make_run_folder(study.arm_path("xrv-full"), signal=0.5, fold_seed=9, **SHAPE)
    html = write_study_report(study).read_text()
    assert re.search(r"tested other patients than", html)
    assert "tests different patients in the two runs" in html


def test_study_folder_refuses_a_non_study(tmp_path):
    with pytest.raises(InputError, match="not a study folder"):
        StudyFolder.existing(tmp_path)
    assert main(["study", "resume", str(tmp_path)]) == 2


def test_study_status_reads_without_torch(tmp_path):
    """The app lists a study's arms in its own process, which never imports torch."""
    import subprocess
    import sys

    study = _study(tmp_path)
    code = (
        "import sys\n"
        "from core.study.folder import StudyFolder\n"
        f"s = StudyFolder.existing({str(study.path)!r})\n"
        "print(s.arm_statuses(), s.running_arm())\n"
        "print('torch' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    statuses, torch_loaded = out.stdout.strip().splitlines()
    assert "'xrv-full': 'finished'" in statuses and "'imagenet-full': 'finished'" in statuses
    assert "'imagenet-probe+progressive': 'skipped'" in statuses
    assert statuses.endswith("None") and torch_loaded == "False"
