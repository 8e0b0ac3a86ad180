"""The Train view follows a run's events.jsonl while it grows (written here in the real
schema), reattaches to a running pid, plots points as they arrive, and shows a crash."""

import json
import subprocess
import sys

from PySide6.QtCore import QTimer

from tests.gui.events_writer import SLEEPING_JOB, FakeRunWriter


def _live_process():
    return subprocess.Popen(SLEEPING_JOB)


def test_reattach_follow_and_finish(window, qtbot, studio_home):
    run_dir = studio_home / "runs" / "20260101-000000-live"
    writer = FakeRunWriter(run_dir)
    proc = _live_process()
    try:
        (run_dir / "state.json").write_text(json.dumps({"status": "running", "pid": proc.pid}))
        writer.write_until("epoch_finished")  # history written before the app attached
        job = window.queue.open_run(run_dir)
        assert job.is_active and job.pid == proc.pid
        train = window.pages["train"]
        window.show_page("train")
        train.runs.select_job(job)
        assert train.shown_job is job
        qtbot.waitUntil(lambda: train.panel.plots.point_counts()["auroc_mean"] == 1, timeout=3000)

        # the job keeps writing: points arrive without any call from the test
        timer = QTimer()
        timer.timeout.connect(lambda: writer.write(3))
        timer.start(20)
        qtbot.waitUntil(lambda: train.panel.plots.point_counts()["auroc_mean"] == 4, timeout=8000)
        counts = train.panel.plots.point_counts()
        assert counts["auroc_r0-f0"] == 4
        qtbot.waitUntil(lambda: train.panel.plots.point_counts()["batches"] > 0, timeout=8000)
        qtbot.waitUntil(lambda: job.progress.status == "finished", timeout=8000)
        timer.stop()
        assert train.redraws < job.progress.n_events  # redraws are throttled
        marks = [(0, "probe"), (2, "layer4")]
        qtbot.waitUntil(lambda: train.panel.plots.loss_plot._marks == marks, timeout=2000)
        assert job.is_active  # still the process: the run is done once the process exits
    finally:
        proc.kill()
        proc.wait()
    qtbot.waitUntil(lambda: not job.is_active, timeout=3000)
    assert job.status_text() == "finished"
    results = window.pages["results"]
    assert "0.710" in results.table.topLevelItem(0).text(2)
    (run_dir / "report.html").write_text("<html></html>")
    results.table.setCurrentItem(results.table.topLevelItem(0))
    assert results.selected_run() == run_dir and results.report_button.isEnabled()


def test_crash_without_terminal_event_shows_error_and_allows_resume(window, qtbot, studio_home):
    run_dir = studio_home / "runs" / "20260101-000000-crash"
    writer = FakeRunWriter(run_dir)
    proc = _live_process()
    (run_dir / "state.json").write_text(json.dumps({"status": "running", "pid": proc.pid}))
    writer.write_until("epoch_finished")
    job = window.queue.open_run(run_dir)
    train = window.pages["train"]
    train.runs.select_job(job)
    proc.kill()
    proc.wait()
    qtbot.waitUntil(lambda: job.progress.status == "failed", timeout=3000)
    assert "stopped without finishing" in job.progress.error
    qtbot.waitUntil(lambda: not train.panel.error.isHidden(), timeout=3000)
    assert train.resume_button.isEnabled()
    assert not train.cancel_button.isEnabled()


def test_past_runs_are_listed_at_start(qtbot, settings, no_dialogs, studio_home):
    from bpd_gui.main_window import MainWindow

    FakeRunWriter(studio_home / "runs" / "20260101-000000-done").write()
    (studio_home / "runs" / "not-a-run").mkdir()
    win = MainWindow(settings)
    qtbot.addWidget(win)
    qtbot.waitUntil(lambda: len(win.queue.jobs) == 1, timeout=3000)
    job = win.queue.jobs[0]
    assert job.progress.status == "finished" and not job.is_active
    assert win.pages["train"].runs.topLevelItemCount() == 1


def test_a_reused_pid_is_not_taken_for_the_job(window, studio_home):
    run_dir = studio_home / "runs" / "20260101-000000-stale"
    FakeRunWriter(run_dir).write(5)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run_dir / "state.json").write_text(json.dumps({"status": "running", "pid": other.pid}))
        job = window.queue.open_run(run_dir)
        assert not job.is_active
        assert job.progress.status == "failed"  # it stopped without a final event
    finally:
        other.kill()
        other.wait()
