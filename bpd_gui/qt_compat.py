"""Guard against a PySide6 6.12.0 bug that aborts the app on Python 3.11.

6.12.0 drops a reference to None whenever a Qt call returns a null pointer (e.g.
QGraphicsItem.parentItem() of a top-level item), and likewise to True/False; pyqtgraph
makes such calls on every redraw, so their reference counts fall until Python aborts
("deallocating None") a few minutes into live plots. pyproject excludes 6.12.0; where
it is installed anyway, the app makes these singletons effectively immortal, as Python
3.12 does itself.
"""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)
IMMORTAL = 1 << 40  # far beyond any count the leak can use up


def loses_none_references() -> bool:
    from PySide6.QtWidgets import QGraphicsRectItem

    item = QGraphicsRectItem()
    before = sys.getrefcount(None)
    for _ in range(10):
        item.parentItem()
    return sys.getrefcount(None) < before - 5


def guard_none_refcount() -> bool:
    """Returns True when the workaround was needed and applied."""
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False  # None is immortal there
    if not loses_none_references():
        return False
    import PySide6

    log.warning(
        "PySide6 %s loses references to None; applying a workaround. Install another "
        "version (pip install 'PySide6-Essentials!=6.12.0') to remove this message.",
        PySide6.__version__,
    )
    for singleton in (None, True, False):
        ctypes.c_ssize_t.from_address(id(singleton)).value += IMMORTAL
    return True
