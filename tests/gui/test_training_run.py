"""A real tiny run through the Train view: `bpd train` as a child process, live plots,
an event loop that never stalls, Cancel, Resume, and the finished summary.

Tiny on purpose: 12 demo patients, 32 px, random init, 2 folds, 3 epochs, CPU.
"""

import json
import os
import time

import pytest
from PySide6.QtCore import QElapsedTimer, Qt, QTimer

from bpd_gui.jobs import job_client
from core import paths
from core.cohort.table import read_table
from core.runs.folder import RunFolder
from core.runs.run_config import RunConfig

pytestmark = pytest.mark.slow  # real training runs (CI runs them too)

N_PER_CLASS = 6


def small_demo_table(tmp_path):
    demo = paths.demo_cohort_table()
    df = read_table(demo)
    first = df.groupby("patient_id", sort=False).head(1)
    parts = [first[first["diagnosis"] == v].head(N_PER_CLASS) for v in ("NORMAL", "PNEUMONIA")]
    table = tmp_path / "small.csv"
    rows = ["patient_id,image,diagnosis"] + [
        f"{r.patient_id},{r.image},{r.diagnosis}" for part in parts for r in part.itertuples()
    ]
    table.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return table, demo.parent


def tiny_form(form):
    form.load_preset("cpu-fast")
    form.init.setCurrentText("random")
    form.strategy.setCurrentText("progressive")
    form.folds.setValue(2)
    form.repeats.setValue(1)
    form.epochs.setValue(3)
    form.resolution.setValue(32)
    form.batch_size.setValue(4)
    form.device.setCurrentText("cpu")
    form.name.setText("gui-test")


class GapMeter:
    """A 10 ms timer on the GUI thread. Per tick: the wall time since the last tick (an
    event-loop iteration plus any wait) and the GUI thread's own CPU time in it (work
    the app did; a loaded machine stretches wall time without it)."""

    def __init__(self):
        self.clock = QElapsedTimer()
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.gaps: list[int] = []
        self.cpu_ms: list[float] = []

    def start(self):
        self._cpu = time.thread_time()
        self.clock.start()
        self.timer.start()

    def _tick(self):
        cpu = time.thread_time()
        self.gaps.append(self.clock.restart())
        self.cpu_ms.append((cpu - self._cpu) * 1000)
        self._cpu = cpu

    def stop(self) -> dict:
        self.timer.stop()
        gaps = sorted(self.gaps[1:])
        return {
            "ticks": len(gaps),
            "max_gap_ms": gaps[-1],
            "p99_gap_ms": gaps[int(0.99 * (len(gaps) - 1))],
            "max_gui_cpu_ms": max(self.cpu_ms[1:]),
        }


def test_tiny_run_live_cancel_resume_finish(window, qtbot, tmp_path):
    table, images_root = small_demo_table(tmp_path)
    window.session.open_with_guesses(str(table), images_root=str(images_root))
    qtbot.waitUntil(lambda: window.session.cohort is not None, timeout=20000)
    assert window.session.cohort.n_patients == 2 * N_PER_CLASS
    train = window.pages["train"]
    window.show_page("train")
    tiny_form(train.form)

    meter = GapMeter()
    meter.start()
    qtbot.mouseClick(train.start_button, Qt.LeftButton)
    job = train.shown_job
    assert job is not None and job.is_active
    # plot points arrive while the child trains
    qtbot.waitUntil(lambda: train.panel.plots.point_counts()["epoch_loss"] >= 1, timeout=90000)
    assert train.panel.plots.point_counts()["batches"] >= 1
    assert train.panel.progress_bar.value() > 0

    qtbot.mouseClick(train.cancel_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not job.is_active, timeout=60000)
    loop = meter.stop()
    print("event loop while training:", loop)
    assert job.progress.status == "cancelled", job.progress.error
    assert loop["ticks"] > 100
    assert loop["max_gui_cpu_ms"] < 100, loop  # the app itself never works 100 ms at a stretch
    # and iterations stay short on a busy machine: the training child's threads on every
    # core. Beyond twice the cores in runnable work (other jobs besides this test) wall
    # gaps measure the OS's time slices, not the app (seen: p99 282 ms at load 6 on 2
    # cores with the app's own CPU at most 48 ms), so only the app's CPU is judged then.
    if os.getloadavg()[0] < 2 * (os.cpu_count() or 1):
        assert loop["p99_gap_ms"] < 100, loop
    assert train.resume_button.isEnabled()

    qtbot.mouseClick(train.resume_button, Qt.LeftButton)
    assert job.is_active
    qtbot.waitUntil(lambda: not job.is_active, timeout=120000)
    assert job.progress.status == "finished", job.progress.error
    summary = job.progress.summary
    assert summary["n_patients"] == 2 * N_PER_CLASS
    assert summary["n_folds"] == 2 and summary["auroc"]["n"] == 2  # both folds scored
    # the app started `bpd train --config FILE`, FILE the form's RunConfig
    config_file = job_client.run_config_file(job.run_dir)
    started = RunConfig.from_json(json.loads(config_file.read_text()))
    assert started.train == train.form.config()
    assert started.cohort.table == str(table) and started.cohort.outcome.column == "diagnosis"
    recorded = RunConfig.from_json(RunFolder(job.run_dir).config())
    assert recorded.train == started.train and recorded.cohort == started.cohort
    counts = train.panel.plots.point_counts()
    assert counts["auroc_mean"] >= 1 and counts["auroc_r0-f1"] >= 1
    results = window.pages["results"].table
    assert results.topLevelItemCount() == 1 and results.topLevelItem(0).text(1) == "finished"


def test_runs_queue_one_at_a_time(window, qtbot, tmp_path):
    table, images_root = small_demo_table(tmp_path)
    window.session.open_with_guesses(str(table), images_root=str(images_root))
    qtbot.waitUntil(lambda: window.session.cohort is not None, timeout=20000)
    train = window.pages["train"]
    tiny_form(train.form)
    first = train.start_run()
    assert train.start_button.text() == "Add to queue"
    second = train.start_run()
    assert first.is_active and second.is_queued and window.queue.active_job() is first
    time.sleep(0.5)
    train.runs.select_job(first)
    qtbot.mouseClick(train.cancel_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: second.is_active, timeout=60000)
    assert not first.is_active and first.progress.status == "cancelled"
    second.cancel()
    qtbot.waitUntil(lambda: not second.is_active, timeout=60000)


def test_a_job_that_fails_on_bad_input_shows_the_cli_message(window, qtbot, tmp_path):
    table, images_root = small_demo_table(tmp_path)
    window.session.open_with_guesses(str(table), images_root=str(images_root))
    qtbot.waitUntil(lambda: window.session.cohort is not None, timeout=20000)
    table.write_bytes(b"\xd0\xcf\x11\xe0 the table was replaced after it was checked")
    train = window.pages["train"]
    tiny_form(train.form)
    job = train.start_run()
    qtbot.waitUntil(lambda: not job.is_active, timeout=60000)
    assert job.progress.status == "failed"
    assert "exit code 2" in job.progress.error and "xls" in job.progress.error
    assert "Traceback" not in job.progress.error
    qtbot.waitUntil(lambda: not train.panel.error.isHidden(), timeout=3000)
    assert train.resume_button.isEnabled()  # starts it again once the table is fixed
