"""`bpd compare`: paired tests between two runs, refusing runs that do not pair."""

import csv
import json

import pytest

from core.cli.main import main
from core.errors import InputError
from core.evaluation.compare import compare_runs, format_comparison
from core.evaluation.statistics import delong_test, wilcoxon_signed_rank
from tests.core.runfolder_factory import make_run_folder

SHAPE = {"repeats": 6, "folds": 3, "n_patients": 36, "n_positive": 14}


@pytest.fixture
def pair(tmp_path):
    strong = make_run_folder(tmp_path / "xrv", signal=1.5, score_seed=1, **SHAPE)
    weak = make_run_folder(
        tmp_path / "imagenet", signal=0.2, score_seed=2, init="imagenet", **SHAPE
    )
    return strong, weak


def _oof(run_dir):
    with open(run_dir / "predictions.csv", newline="") as fh:
        return {r["patient_id"]: (int(r["label"]), float(r["prob"])) for r in csv.DictReader(fh)}


def test_repeat_level_wilcoxon_reproduces_the_papers_smallest_p(pair):
    a, b = pair
    res = compare_runs(a, b)
    rep = res["repeats"]
    sa = json.loads((a / "summary.json").read_text())["repeat_auroc"]
    sb = json.loads((b / "summary.json").read_text())["repeat_auroc"]
    assert rep["a"] == pytest.approx(sa) and rep["b"] == pytest.approx(sb)
    assert rep["a_better"] == 6
    assert rep["wilcoxon"]["p_value"] == pytest.approx(2 / 64)
    assert rep["smallest_possible_p"] == pytest.approx(2 / 64)


def test_fold_level_wilcoxon_pairs_folds_by_id(pair):
    a, b = pair
    res = compare_runs(a, b)["folds"]
    assert res["keys"][:3] == ["r0-f0", "r0-f1", "r0-f2"] and len(res["keys"]) == 18
    assert res["wilcoxon"] == wilcoxon_signed_rank(res["a"], res["b"]).to_json()
    assert res["wilcoxon"]["p_value"] < 0.01


def test_delong_uses_the_same_patients_pooled_predictions(pair):
    a, b = pair
    res = compare_runs(a, b)["delong"]
    oa, ob = _oof(a), _oof(b)
    ids = sorted(oa)
    ref = delong_test([oa[i][0] for i in ids], [oa[i][1] for i in ids], [ob[i][1] for i in ids])
    assert res["difference"] == pytest.approx(ref.difference)
    assert res["p_value"] == pytest.approx(ref.p_value)
    assert res["ci_low"] < res["difference"] < res["ci_high"]


def test_a_run_compared_with_itself_shows_no_difference(pair):
    a, _ = pair
    res = compare_runs(a, a)
    assert res["delong"]["difference"] == 0.0 and res["delong"]["p_value"] == 1.0
    assert res["repeats"]["wilcoxon"]["p_value"] == 1.0


def test_different_patients_are_refused_naming_them(tmp_path):
    a = make_run_folder(tmp_path / "a", **SHAPE)
    ids = [f"P{i:03d}" for i in range(35)] + ["Q999"]
    b = make_run_folder(tmp_path / "b", patient_ids=ids, **SHAPE)
    with pytest.raises(
        InputError,
        match=r"different patients: 1 only in a \('P035'\); "
        r"1 only in b \('Q999'\)",
    ):
        compare_runs(a, b)


def test_different_fold_assignments_are_refused_naming_the_fold(tmp_path):
    a = make_run_folder(tmp_path / "a", fold_seed=0, **SHAPE)
    b = make_run_folder(tmp_path / "b", fold_seed=1, **SHAPE)
    with pytest.raises(InputError, match="fold r0-f0 tests different patients"):
        compare_runs(a, b)


def test_different_fold_counts_are_refused(tmp_path):
    a = make_run_folder(tmp_path / "a", **SHAPE)
    b = make_run_folder(tmp_path / "b", **{**SHAPE, "repeats": 5})
    with pytest.raises(InputError, match=r"different finished folds: .*'r5-f0'.* only in a"):
        compare_runs(a, b)


def test_different_outcomes_are_refused(tmp_path):
    a = make_run_folder(tmp_path / "a", **SHAPE)
    b = make_run_folder(tmp_path / "b", **{**SHAPE, "n_positive": 15})
    with pytest.raises(InputError, match="different outcomes"):
        compare_runs(a, b)


def test_cli_prints_a_table_or_json(pair, capsys):
    a, b = pair
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "repeat-level mean AUROC" in out and "0.0312" in out and "95% CI" in out
    assert main(["compare", str(a), str(b), "--json"]) == 0
    parsed = json.loads(capsys.readouterr().out)
    assert parsed["repeats"]["wilcoxon"]["n"] == 6
    assert format_comparison(parsed).startswith("A = xrv")


def test_cli_refusal_exits_2_with_the_reason(tmp_path, capsys):
    a = make_run_folder(tmp_path / "a", fold_seed=0, **SHAPE)
    b = make_run_folder(tmp_path / "b", fold_seed=3, **SHAPE)
    assert main(["compare", str(a), str(b)]) == 2
    assert "tests different patients" in capsys.readouterr().err


def test_one_class_folds_with_null_auroc_are_left_out_of_the_pairs(pair):
    a, b = pair
    for run in (a, b):
        path = run / "folds/r0-f1/fold.json"
        fold = json.loads(path.read_text())
        fold["metrics"]["auroc"] = None  # how summary files store an undefined AUROC
        path.write_text(json.dumps(fold))
    res = compare_runs(a, b)
    assert "r0-f1" not in res["folds"]["keys"] and len(res["folds"]["keys"]) == 17
    assert len(res["repeats"]["keys"]) == 6


def test_folds_also_get_the_corrected_resampled_t(pair):
    from core.evaluation.statistics import corrected_resampled_t

    a, b = pair
    res = compare_runs(a, b)
    t = res["folds_corrected_t"]
    ref = corrected_resampled_t(res["folds"]["a"], res["folds"]["b"], n_train=24, n_test=12)
    assert t["n_folds"] == 18 and t["df"] == 17
    assert t["t"] == pytest.approx(ref.t) and t["p_value"] == pytest.approx(ref.p_value)
    # fewer folds' worth of evidence than the fold-level Wilcoxon claims
    assert t["p_value"] > res["folds"]["wilcoxon"]["p_value"]
    assert "folds, corrected t" in format_comparison(res)
