"""Readable message boxes: bad input never shows a traceback to the user."""

from __future__ import annotations

import logging
import sys
import traceback

from PySide6.QtWidgets import QMessageBox, QWidget

log = logging.getLogger(__name__)


def show_error(parent: QWidget | None, title: str, message: str, details: str | None = None):
    box = QMessageBox(QMessageBox.Warning, title, message, QMessageBox.Ok, parent)
    box.setObjectName("error_box")
    if details:
        box.setDetailedText(details)
    if _suppressed():
        log.warning("%s: %s", title, message)
        return box
    box.open()  # non-blocking: the event loop (and the job) keep running
    return box


def _suppressed() -> bool:
    # tests and --screenshots set this so no box waits for a click
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    return bool(app and app.property("bpd_no_dialogs"))


def install_excepthook() -> None:
    """An unexpected bug shows a short message (details expandable), not a dead window."""

    def hook(exc_type, exc, tb):
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        log.error("unhandled error:\n%s", text)
        show_error(
            None,
            "Something went wrong",
            f"{exc_type.__name__}: {exc}\n\nThe app keeps running. "
            "If this repeats, please report it with the details below.",
            text,
        )

    sys.excepthook = hook
