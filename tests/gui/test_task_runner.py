"""Background tasks: results reach their callbacks, but not after the window closed."""

import threading

from PySide6.QtWidgets import QLabel

from bpd_gui.workers import TaskRunner


def test_results_reach_their_callbacks(qtbot):
    runner = TaskRunner(max_threads=1)
    got, failed = [], []
    runner.submit(lambda x: x * 2, 21, on_done=got.append)
    runner.submit(lambda: 1 / 0, on_error=failed.append)
    qtbot.waitUntil(lambda: bool(got and failed), timeout=5000)
    assert got == [42] and failed[0].startswith("ZeroDivisionError")
    assert runner.shutdown(5000)


def test_a_result_after_shutdown_does_not_reach_a_deleted_widget(qtbot):
    # The window closes while a task still runs (shutdown waits only so long); its
    # result must not be handed to widgets that are deleted with the window.
    runner = TaskRunner(max_threads=1)
    label = QLabel()
    gate = threading.Event()
    got = []

    def slow() -> str:
        gate.wait(10)
        return "late"

    runner.submit(slow, on_done=lambda text: (got.append(text), label.setText(text)))
    assert not runner.shutdown(50)  # still running when the window closes
    label.deleteLater()
    qtbot.wait(50)
    gate.set()
    assert runner.wait(5000)
    qtbot.wait(100)  # the queued result is delivered now, or never
    assert got == []
    assert not runner.busy()  # the worker itself is released all the same
