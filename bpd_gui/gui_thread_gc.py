"""Python's cyclic garbage collector runs on the GUI thread only.

CPython collects reference cycles in whichever thread happens to allocate. When that is
a background task (a thumbnail, a validation), Qt objects in the garbage (a closed
dialog, a replaced page) are destroyed on the worker thread: their C++ destructors take
Qt's per-object locks and then wait for the GIL, while the GUI thread, deleting widgets
of its own, holds the GIL and waits for one of those locks. The app froze that way
(caught with gdb in a GUI test run: the worker in gc_collect_generations -> ~QObject ->
take_gil, the GUI thread in ~QAction -> QBasicMutex::lockInternal). So automatic
collection is switched off and a GUI-thread timer collects whatever generation Python
itself would have collected by now (pyqtgraph's GarbageCollector does the same).
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QCoreApplication, QObject, QTimer

INTERVAL_MS = 500


class GuiThreadCollector(QObject):
    """Owned by the application; one per process."""

    def __init__(self, app: QCoreApplication):
        super().__init__(app)
        self.setObjectName("bpd_gui_thread_gc")
        self.thresholds = gc.get_threshold()
        gc.disable()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.collect_if_due)
        self.timer.start(INTERVAL_MS)

    def collect_if_due(self) -> None:
        """The oldest generation whose count passed Python's own threshold, if any."""
        counts = zip(gc.get_count(), self.thresholds, strict=True)
        due = [generation for generation, (n, limit) in enumerate(counts) if n > limit]
        if due:
            gc.collect(max(due))


def collect_garbage_on_gui_thread(app: QCoreApplication) -> GuiThreadCollector:
    """Call once from the GUI thread when the application exists (again: the same one)."""
    existing = app.findChild(GuiThreadCollector, "bpd_gui_thread_gc")
    return existing if existing is not None else GuiThreadCollector(app)
