"""The Predict page keeps its model(s) loaded: one `bpd predict --serve` child per model,
reused click after click, replaced when the model changes or the child dies, ended
when the app closes."""

from __future__ import annotations

import os
import signal

import pytest

from bpd_gui.jobs.job_client import pid_alive
from tests.gui.review_run import tiny_run

pytestmark = pytest.mark.slow


def _predict(view, qtbot, image) -> None:
    view.clear_inputs()
    view.add_files([str(image)])
    view.start()
    assert view.is_running()
    qtbot.waitUntil(lambda: not view.is_running(), timeout=300_000)
    assert "1 image(s) predicted" in view.status.text(), view.status.text()
    assert view.results.rowCount() == 1 and view.rows[0]["prob"]


def _wait_gone(qtbot, pid: int) -> None:
    qtbot.waitUntil(lambda: not pid_alive(pid), timeout=10_000)


def test_one_child_per_model_reused_replaced_and_ended(window, qtbot, images_dir, tmp_path):
    run = tiny_run()
    view = window.pages["predict"]
    window.show_page("predict")
    view.set_model(run)
    # started as soon as the page shows a model: imports and loading before the click
    qtbot.waitUntil(lambda: view.server.pid() is not None, timeout=10_000)
    first = view.server.pid()
    view.cam_check.setChecked(False)
    _predict(view, qtbot, images_dir / "IM-0115-0001.jpeg")
    assert view.server.pid() == first
    view.cam_check.setChecked(True)  # overlays too, from the same child
    _predict(view, qtbot, images_dir / "person1_bacteria_1.jpeg")
    assert view.server.pid() == first
    assert os.path.isfile(view.rows[0]["cam_png"])

    # another model (the same run under another name): a new child, the old one ends
    other = tmp_path / "same run, other name"
    other.symlink_to(run, target_is_directory=True)
    view.set_model(other)
    _wait_gone(qtbot, first)
    second = view.server.pid()
    assert second is not None and second != first
    _predict(view, qtbot, images_dir / "IM-0117-0001.jpeg")
    assert view.server.pid() == second

    # a child that died is replaced by the next click
    os.kill(second, signal.SIGKILL)
    _wait_gone(qtbot, second)
    qtbot.waitUntil(lambda: view.server.pid() is None, timeout=10_000)
    _predict(view, qtbot, images_dir / "IM-0115-0001.jpeg")
    third = view.server.pid()
    assert third not in (None, first, second)

    window.close()  # the app closes: no child left behind
    _wait_gone(qtbot, third)
    assert view.server.pid() is None


def test_a_bad_model_folder_fails_the_click_with_its_reason(
    window, qtbot, images_dir, tmp_path, caplog
):
    view = window.pages["predict"]
    view.set_model(tmp_path)  # no config.json: not a run, not an exported model
    view.add_files([str(images_dir / "IM-0115-0001.jpeg")])
    view.start()
    qtbot.waitUntil(lambda: not view.is_running(), timeout=120_000)
    assert view.status.text() == "Prediction failed."
    assert view.results.rowCount() == 0
    assert "not a run folder" in caplog.text  # the child's own message, in the error box
