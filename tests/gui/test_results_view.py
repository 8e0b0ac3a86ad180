"""The Results page on two real runs of the demo cohort (tests/data/run_folders): the
newest is selected and its metrics with CIs, ROC, PR, calibration and folds are shown;
two runs are compared by the real `bpd compare`; a run is removed only after a yes and
never while it trains; the Settings column is not cut off."""

import shutil
import subprocess
from pathlib import Path

from tests.gui.events_writer import SLEEPING_JOB

DATA = Path(__file__).parents[1] / "data" / "run_folders"
OLDER, NEWER = "20260101-100000-demo-random", "20260102-100000-demo-full"


def _runs(studio_home):
    runs = studio_home / "runs"
    shutil.copytree(DATA / "demo-random", runs / OLDER)
    shutil.copytree(DATA / "demo-full", runs / NEWER)
    return runs


def _open_results(window, qtbot, studio_home):
    runs = _runs(studio_home)
    window.queue.discover(runs)
    window.resize(1280, 820)
    window.show_page("results")
    view = window.pages["results"]
    qtbot.waitUntil(lambda: view.details.results is not None, timeout=60000)
    return view, runs


def test_newest_run_selected_with_its_results(window, qtbot, studio_home):
    view, runs = _open_results(window, qtbot, studio_home)
    assert view.selected_run() == runs / NEWER
    d = view.details
    assert d.results.run_dir == runs / NEWER
    assert "163 infants (60 positive), 6 folds, threshold 0.5" in d.headline.text()
    assert d.metrics.rowCount() == 7
    auroc = [d.metrics.item(0, c).text() for c in range(5)]
    assert auroc[0] == "AUROC" and auroc[1] == "0.728 ± 0.081"  # summary.json
    assert auroc[2] == "0.750"  # pooled out-of-fold
    low, high = (float(x) for x in auroc[3].split(" – "))
    assert low < 0.750 < high
    assert d.folds.rowCount() == 6 and d.folds.item(0, 0).text() == "r0-f0"
    counts = d.plots.curve_counts()
    assert counts["roc"] == 1 + 6 + 1  # chance line, six folds, pooled
    assert counts["pr"] == 6 + 1 + 1  # six folds, pooled, prevalence
    assert counts["calibration"] == 2
    assert d.baselines.rowCount() >= 1  # the image model's row, baselines when the table exists
    # Settings is not cut off: the whole text fits in the table at 1280 px
    col = view.table.columnCount() - 1
    assert view.table.headerItem().text(col) == "Settings"
    for i in range(view.table.topLevelItemCount()):
        item = view.table.topLevelItem(i)
        text = item.text(col)  # from config.json: these copies have no event stream
        assert text.startswith("random · ") and text.endswith("64 px"), text
        assert "3×2 folds" in text and "random init" in item.toolTip(col)
        needed = view.table.fontMetrics().horizontalAdvance(text) + 12  # cell padding
        assert view.table.columnWidth(col) >= needed, (view.table.columnWidth(col), needed)
    assert "random init · full" in d.headline.text()  # the whole description


def test_two_runs_compared_by_bpd_compare(window, qtbot, studio_home):
    view, _runs_dir = _open_results(window, qtbot, studio_home)
    assert not view.compare_button.isEnabled()
    view.table.topLevelItem(1).setSelected(True)  # now both
    assert view.compare_button.isEnabled()
    view.compare_selected()
    qtbot.waitUntil(lambda: view.details.compare.rowCount() >= 3, timeout=60000)
    n = view.details.compare.rowCount()
    tests = [view.details.compare.item(r, 0).text() for r in range(n)]
    assert tests[0].startswith("Wilcoxon, repeat") and tests[-1].startswith("DeLong")
    assert any(t.startswith("Corrected resampled t") for t in tests)
    p = float(view.details.compare.item(0, 6).text())
    assert 0 < p <= 1
    assert f"A = <b>{OLDER}</b>" in view.details.compare_note.text()


def test_remove_asks_and_refuses_a_training_run(window, qtbot, studio_home):
    view, runs = _open_results(window, qtbot, studio_home)
    view.confirm_removal = lambda run: False
    assert not view.remove_selected() and (runs / NEWER).is_dir()
    # a run that trains is never removed, whatever the answer
    job = window.queue.find(runs / NEWER)
    proc = subprocess.Popen(SLEEPING_JOB)
    try:
        job.pid = proc.pid
        view.confirm_removal = lambda run: True
        assert not view.remove_selected() and (runs / NEWER).is_dir()
    finally:
        job.pid = None
        proc.kill()
        proc.wait()
    assert view.remove_selected()
    assert not (runs / NEWER).exists()
    assert window.queue.find(runs / NEWER) is None
    names = [view.table.topLevelItem(i).text(0) for i in range(view.table.topLevelItemCount())]
    assert names == [OLDER] and view.selected_run() == runs / OLDER


def test_a_studys_table_and_forest_plot(window, qtbot, studio_home):
    from core.study.folder import StudyFolder
    from tests.core.runfolder_factory import make_run_folder
    from tests.core.test_study_report import SHAPE, _config

    study = StudyFolder.create(studio_home / "runs" / "20260103-000000-study", _config())
    make_run_folder(study.arm_path("xrv-probe+progressive"), signal=1.6, score_seed=1, **SHAPE)
    make_run_folder(study.arm_path("xrv-full"), signal=0.3, score_seed=2, **SHAPE)
    study.set_skipped("imagenet-full", "weights missing")
    window.show_page("results")
    view = window.pages["results"]
    view.details.tabs.setCurrentWidget(view.study)
    panel = view.study
    assert panel.picker.currentText() == study.path.name
    assert panel.table.rowCount() == 4  # 2 inits x 2 strategies
    by_arm = {panel.table.item(r, 0).text(): r for r in range(4)}
    best = by_arm["xrv-probe+progressive"]
    assert panel.table.item(best, 2).text() == "finished"
    low, high = (float(x) for x in panel.table.item(best, 4).text().split(" – "))
    mean = float(panel.table.item(best, 3).text().split(" ± ")[0])
    assert low < mean < high
    assert panel.table.item(by_arm["imagenet-full"], 2).text() == "skipped"
    assert "2 of 4 arms finished" in panel.note.text()
    ticks = panel.forest.getAxis("left")._tickLevels[0]
    assert sorted(name for _, name in ticks) == ["xrv-full", "xrv-probe+progressive"]
