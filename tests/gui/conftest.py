"""GUI tests run offscreen, with their own studio home and settings file."""

from __future__ import annotations

import os
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest


@pytest.fixture(scope="session", autouse=True)
def gui_thread_gc(qapp):
    """As the app runs (bpd_gui.main.create_app): cycles are collected on the GUI thread
    only, never by a background task's thread (see bpd_gui/gui_thread_gc.py)."""
    import gc

    from bpd_gui.gui_thread_gc import collect_garbage_on_gui_thread

    collector = collect_garbage_on_gui_thread(qapp)
    yield collector
    collector.timer.stop()
    gc.enable()


@pytest.fixture(autouse=True)
def studio_home(tmp_path, monkeypatch):
    home = tmp_path / "studio"
    home.mkdir()
    monkeypatch.setenv("BPD_STUDIO_HOME", str(home))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return home


@pytest.fixture
def no_dialogs(qapp):
    # message boxes are logged instead of waiting for a click
    qapp.setProperty("bpd_no_dialogs", True)
    yield
    qapp.setProperty("bpd_no_dialogs", False)


@pytest.fixture
def settings(tmp_path):
    from PySide6.QtCore import QSettings

    return QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)


@pytest.fixture
def window(qtbot, settings, no_dialogs):
    from bpd_gui.main_window import MainWindow

    win = MainWindow(settings)
    win.close_policy = "stop"
    # pytest-qt closes the window before fixtures are torn down, so the settling must
    # happen in before_close_func
    qtbot.addWidget(win, before_close_func=_settle)
    win.show()
    yield win


def _settle(win) -> None:
    """Stop this test's jobs and let its background tasks report before the window
    closes, so that none is still running into the next test (thumbnails of the whole
    demo cohort take seconds on a slow machine). Closing with tasks still running is
    tested on its own (test_task_runner.py)."""
    from PySide6.QtWidgets import QApplication

    for job in list(win.queue.jobs):
        if job.pid is not None:
            job.cancel()
        job.stop_following()
    deadline = time.monotonic() + 60
    while win.tasks.busy() and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.01)
