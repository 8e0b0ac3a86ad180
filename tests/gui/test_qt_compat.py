"""Live plots must not use up None's reference count (PySide6 6.12.0 on Python 3.11 did,
and the app aborted after a few minutes of training)."""

import sys

from bpd_gui.jobs.run_progress import RunProgress
from bpd_gui.qt_compat import loses_none_references
from bpd_gui.widgets.plots import RunPlots
from core.runs.events import make_event
from tests.gui.events_writer import FakeRunWriter


def test_installed_pyside_keeps_references_to_none(qapp):
    assert not loses_none_references()


def test_many_redraws_keep_none_alive(qtbot, tmp_path):
    plots = RunPlots()
    qtbot.addWidget(plots)
    plots.show()
    writer = FakeRunWriter(tmp_path / "run", folds=("r0-f0", "r0-f1"), n_epochs=6)
    progress = RunProgress()
    before = sys.getrefcount(None)
    for type_, fields in writer.steps:
        progress.apply(make_event(type_, **fields))
        plots.show_progress(progress)
        plots.repaint()
    assert sys.getrefcount(None) >= before - 50
    assert plots.point_counts()["auroc_mean"] == 6
