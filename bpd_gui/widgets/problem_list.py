"""Every problem found in a cohort, with its reason; selecting one names its patient.

Messages are never cut off: the Message column takes the width that is left and wraps
(rows grow), every cell's tooltip holds the whole message, and `message_selected`
gives the page the full text of the selected problem."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QRect, QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QHeaderView, QStyledItemDelegate, QTreeWidget, QTreeWidgetItem

COLUMNS = ["Severity", "Reason", "Row", "Patient", "Message"]
MESSAGE = len(COLUMNS) - 1


class _WrappedHeight(QStyledItemDelegate):
    """A tree view sizes rows for one line; this row is as tall as its message wrapped
    to the column's width (a long path wraps anywhere, as the view paints it)."""

    def __init__(self, view: QTreeWidget):
        super().__init__(view)
        self.view = view

    def sizeHint(self, option, index) -> QSize:
        hint = super().sizeHint(option, index)
        width = max(self.view.header().sectionSize(index.column()) - 10, 40)
        flags = Qt.TextWordWrap | Qt.TextWrapAnywhere
        text = str(index.data() or "")
        height = option.fontMetrics.boundingRect(QRect(0, 0, width, 100_000), flags, text).height()
        return QSize(min(hint.width(), width), max(hint.height(), height + 6))


class ProblemList(QTreeWidget):
    patient_selected = Signal(str)
    message_selected = Signal(str)  # the selected problem's whole message ("" when none)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("problem_list")
        self.setColumnCount(len(COLUMNS))
        self.setHeaderLabels(COLUMNS)
        self.setRootIsDecorated(False)
        self.setAlternatingRowColors(True)
        self.setWordWrap(True)
        self.setUniformRowHeights(False)
        self.setTextElideMode(Qt.ElideNone)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)  # wrap, never scroll away
        header = self.header()
        header.setStretchLastSection(True)
        header.setSectionResizeMode(MESSAGE, QHeaderView.Stretch)
        self.setItemDelegateForColumn(MESSAGE, _WrappedHeight(self))
        header.sectionResized.connect(lambda *_: self.scheduleDelayedItemsLayout())
        self.itemSelectionChanged.connect(self._on_selection)

    def show_problems(self, problems: list[Any]) -> None:
        self.clear()
        order = sorted(problems, key=lambda p: (p.severity != "error", p.row or 0))
        for prob in order:
            item = QTreeWidgetItem([
                prob.severity, prob.reason, "" if prob.row is None else str(prob.row),
                prob.patient_id or "", prob.message,
            ])  # fmt: skip
            full = prob.message + (f"\n{prob.file}" if prob.file else "")
            for col in range(len(COLUMNS)):
                item.setToolTip(col, full)
            item.setData(0, Qt.UserRole, prob.patient_id)
            item.setData(0, Qt.UserRole + 1, full)
            color = "#b00020" if prob.severity == "error" else "#8a6d00"
            item.setForeground(0, QBrush(QColor(color)))
            self.addTopLevelItem(item)
        if not problems:
            self.addTopLevelItem(QTreeWidgetItem(["", "", "", "", "No problems found."]))
        for col in range(4):
            self.resizeColumnToContents(col)
            self.setColumnWidth(col, min(self.columnWidth(col), 180))  # leave room to wrap
        self.scheduleDelayedItemsLayout()  # row heights for the wrapped messages

    def _on_selection(self) -> None:
        items = self.selectedItems()
        self.message_selected.emit((items[0].data(0, Qt.UserRole + 1) or "") if items else "")
        pid = items[0].data(0, Qt.UserRole) if items else None
        if pid:
            self.patient_selected.emit(pid)
