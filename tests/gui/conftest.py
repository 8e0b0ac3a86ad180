"""GUI tests run offscreen, with their own studio home and settings file."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest


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
    qtbot.addWidget(win)
    win.show()
    yield win
    for job in list(win.queue.jobs):
        if job.pid is not None:
            job.cancel()
        job.stop_following()
    win.tasks.wait(5000)
