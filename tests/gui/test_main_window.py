"""Window basics: navigation, About box, shortcuts, remembered state, closing with a job."""

import json
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QMessageBox

from bpd_gui.main_window import PAGES, MainWindow
from tests.gui.events_writer import SLEEPING_JOB, FakeRunWriter

ROOT = Path(__file__).resolve().parents[2]


def test_every_page_is_reachable_and_review_and_predict_are_real(window, qtbot):
    assert [window.nav.item(i).text().lower() for i in range(window.nav.count())] == list(PAGES)
    for name in PAGES:
        window.show_page(name)
        assert window.current_page() == name
    for name in ("review", "predict"):
        texts = [lab.text() for lab in window.pages[name].findChildren(type(window.job_status))]
        assert not any("later version" in t for t in texts), name
    qtbot.keyClick(window, Qt.Key_2, Qt.ControlModifier)
    assert window.current_page() == "cohort"


def test_about_box_names_versions_and_the_notice(window, qtbot):
    qtbot.keyClick(window, Qt.Key_F1)
    box = next(w for w in QApplication.topLevelWidgets() if w.objectName() == "about_box")
    text = box.text()
    for name in ("bpd-studio", "Python", "torch", "PySide6"):
        assert name in text
    assert "not a medical device" in text
    assert isinstance(box, QMessageBox)
    box.close()


def test_gui_process_does_not_import_torch():
    code = (
        "import os, sys; os.environ['QT_QPA_PLATFORM']='offscreen'\n"
        "from PySide6.QtWidgets import QApplication; app = QApplication([])\n"
        "from bpd_gui.main_window import MainWindow; w = MainWindow(discover_runs=False)\n"
        "from bpd_gui.about import about_text; about_text()\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_geometry_and_last_cohort_are_remembered(qtbot, settings, no_dialogs):
    from core import paths

    first = MainWindow(settings)
    qtbot.addWidget(first)
    first.show()
    first.resize(first.minimumSizeHint().width(), 520)
    first.open_demo_cohort()
    qtbot.waitUntil(lambda: first.session.cohort is not None, timeout=20000)
    first.close()
    assert settings.value("geometry") is not None
    second = MainWindow(settings)
    qtbot.addWidget(second)
    second.show()
    assert second.size().height() == 520  # (the offscreen screen is narrower than the app)
    qtbot.waitUntil(lambda: second.session.cohort is not None, timeout=20000)
    assert second.session.source.table == str(paths.demo_cohort_table())
    qtbot.waitUntil(lambda: second.session.frame is not None, timeout=10000)
    second.close()


def _running_job(window, studio_home, name):
    run_dir = studio_home / "runs" / name
    FakeRunWriter(run_dir).write(5)
    proc = subprocess.Popen(SLEEPING_JOB)
    (run_dir / "state.json").write_text(json.dumps({"status": "running", "pid": proc.pid}))
    job = window.queue.open_run(run_dir)
    assert window.queue.active_job() is job
    return proc, job


def test_closing_can_leave_a_job_running(window, qtbot, studio_home):
    proc, _job = _running_job(window, studio_home, "20260101-000000-leave")
    try:
        window.close_policy = "leave"
        window.close()
        assert proc.poll() is None  # still training in the background
    finally:
        proc.kill()
        proc.wait()


def test_closing_can_stop_a_job(window, qtbot, studio_home):
    proc, _job = _running_job(window, studio_home, "20260101-000000-stop")
    window.close_policy = "stop"
    window.close()
    assert proc.wait(timeout=5) != 0  # SIGTERM reached the job
