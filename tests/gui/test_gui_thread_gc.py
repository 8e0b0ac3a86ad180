"""Reference cycles that hold Qt objects are collected on the GUI thread, never on the
thread of a background task that happens to allocate (bpd_gui/gui_thread_gc.py)."""

import gc
import threading

from PySide6.QtCore import QObject

from bpd_gui.gui_thread_gc import collect_garbage_on_gui_thread


class _CycleWithAQtObject:
    def __init__(self, deleted_on: list[int]):
        self.qt_object = QObject()
        self.myself = self  # only the cyclic collector can free this
        self.deleted_on = deleted_on

    def __del__(self):
        self.deleted_on.append(threading.get_ident())


def test_a_cycle_holding_a_qt_object_is_collected_on_the_gui_thread(gui_thread_gc, qtbot):
    assert not gc.isenabled()
    assert collect_garbage_on_gui_thread(gui_thread_gc.parent()) is gui_thread_gc  # one only
    deleted_on: list[int] = []
    _CycleWithAQtObject(deleted_on)
    kept: list[dict] = []  # a background task allocating (automatic collection would run here)
    worker = threading.Thread(target=lambda: kept.extend({} for _ in range(50_000)))
    worker.start()
    worker.join()
    assert deleted_on == []
    qtbot.waitUntil(lambda: bool(deleted_on), timeout=5000)
    assert deleted_on == [threading.get_ident()]
    assert len(kept) == 50_000
