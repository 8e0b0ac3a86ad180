"""Short background work on a QThreadPool: table reading, validation, thumbnails.

Results come back by queued signal to the GUI thread; workers never touch widgets or
pyqtgraph. QImage (not QPixmap) is safe to build off the GUI thread. Garbage cycles are
collected on the GUI thread only (gui_thread_gc): a worker that collected a closed
dialog would destroy Qt objects on its own thread and could deadlock the app.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal
from PySide6.QtGui import QImage

from core.errors import BPDError

log = logging.getLogger(__name__)


class WorkerSignals(QObject):
    finished = Signal(object)  # the function's result
    failed = Signal(str)  # a readable message (details go to the log)
    progress = Signal(int, int)  # done, total


class FunctionWorker(QRunnable):
    """Runs fn(*args, **kwargs); pass `with_progress=True` to get an on_progress(done, total)."""

    def __init__(self, fn: Callable[..., Any], *args: Any, with_progress: bool = False, **kwargs):
        super().__init__()
        self.signals = WorkerSignals()
        self._fn, self._args, self._kwargs = fn, args, kwargs
        if with_progress:
            self._kwargs["on_progress"] = self._emit_progress

    def _emit_progress(self, done: int, total: int, *_: Any) -> None:
        self.signals.progress.emit(int(done), int(total))

    def run(self) -> None:
        try:
            result = self._fn(*self._args, **self._kwargs)
        except (BPDError, ValueError, OSError) as exc:  # bad input: its message is for the user
            self._send(self.signals.failed, str(exc))
        except Exception as exc:  # shown as a message box, never as a traceback
            log.error("background task failed:\n%s", traceback.format_exc())
            self._send(self.signals.failed, f"{type(exc).__name__}: {exc}")
        else:
            self._send(self.signals.finished, result)

    @staticmethod
    def _send(signal, value) -> None:
        with contextlib.suppress(RuntimeError):  # the app is closing, the receiver is gone
            signal.emit(value)


class TaskRunner(QObject):
    """Owns a pool and keeps workers alive until they report back.

    Callbacks are plain callables, so Qt cannot disconnect them when their widgets go:
    after shutdown() (the window closing) results still queued are dropped here instead
    of reaching widgets that are being deleted."""

    def __init__(self, max_threads: int = 2, parent=None):
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self._alive: set[FunctionWorker] = set()
        self._open = True

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        **kwargs: Any,
    ) -> FunctionWorker:
        worker = FunctionWorker(fn, *args, with_progress=on_progress is not None, **kwargs)
        worker.setAutoDelete(False)
        self._alive.add(worker)
        if on_done:
            worker.signals.finished.connect(self._while_open(on_done))
        if on_error:
            worker.signals.failed.connect(self._while_open(on_error))
        if on_progress:
            worker.signals.progress.connect(self._while_open(on_progress))
        worker.signals.finished.connect(lambda *_: self._alive.discard(worker))
        worker.signals.failed.connect(lambda *_: self._alive.discard(worker))
        self.pool.start(worker)
        return worker

    def _while_open(self, callback: Callable[..., None]) -> Callable[..., None]:
        def deliver(*args: Any) -> None:
            if self._open:
                callback(*args)

        return deliver

    def busy(self) -> bool:
        return bool(self._alive)

    def wait(self, msecs: int = 5000) -> bool:
        return self.pool.waitForDone(msecs)

    def shutdown(self, msecs: int = 5000) -> bool:
        """Drop work not yet started and any result still to come, and wait for the
        running tasks (on close)."""
        self._open = False
        self.pool.clear()
        return self.pool.waitForDone(msecs)


def load_thumbnail(path: Path, size: int) -> QImage:
    """Decode one image through core (DICOM, PNG, JPEG) and shrink it for a list icon."""
    from core.cohort.images import read_image

    decoded = read_image(path)
    pixels = np.clip(np.asarray(decoded.pixels, dtype=np.float32), 0.0, 1.0)
    gray = np.ascontiguousarray((pixels * 255.0 + 0.5).astype(np.uint8))
    h, w = gray.shape
    image = QImage(gray.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
    from PySide6.QtCore import Qt

    return image.scaled(
        size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
    )
