"""A cohort too small for its numbers to mean anything says so: summary.json's caveat,
the CLI and the report (rule: core.runs.summary.MIN_PER_CLASS_PER_TEST_FOLD)."""

from __future__ import annotations

from core.cli.main import main
from core.runs.summary import MIN_PER_CLASS_PER_TEST_FOLD, run_summary, small_cohort_caveat
from tests.core.runfolder_factory import make_run_folder


def _fold(i, test, auroc=1.0):
    return {"repeat": 0, "fold": i, "test_patients": test, "metrics": {"auroc": auroc}}


def test_four_patient_run_gets_a_caveat_and_a_large_one_none():
    pooled = [{"patient_id": p, "label": y, "prob": 0.9 * y + 0.05}
              for p, y in (("a", 1), ("b", 0), ("c", 1), ("d", 0))]  # fmt: skip
    folds = [_fold(0, ["a", "b"]), _fold(1, ["c", "d"])]
    summary = run_summary(folds, pooled, 4, 2)
    assert summary["pooled_auroc"] == 1.0  # what the issue saw: perfect, and meaningless
    assert (
        "Too few patients" in summary["caveat"] and "1 positive and 1 negative" in summary["caveat"]
    )
    n = MIN_PER_CLASS_PER_TEST_FOLD
    big = [{"patient_id": f"p{i}", "label": i % 2, "prob": 0.5} for i in range(4 * n)]
    folds = [
        _fold(k, [r["patient_id"] for r in big[k * 2 * n : (k + 1) * 2 * n]]) for k in range(2)
    ]
    assert run_summary(folds, big, len(big), 2 * n)["caveat"] is None
    assert small_cohort_caveat([(n, n), (n - 1, 40)]) is not None


def test_report_shows_the_caveat_even_for_an_older_run(tmp_path):
    small = make_run_folder(tmp_path / "small", n_patients=12, n_positive=6, folds=3)
    big = make_run_folder(tmp_path / "big", n_patients=60, n_positive=30, folds=2, repeats=1)
    assert main(["report", str(small)]) == 0 and main(["report", str(big)]) == 0
    assert "Too few patients" in (small / "report.html").read_text(encoding="utf-8")
    assert "Too few patients" not in (big / "report.html").read_text(encoding="utf-8")
