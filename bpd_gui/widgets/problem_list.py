"""Every problem found in a cohort, with its reason; selecting one names its patient."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem

COLUMNS = ["Severity", "Reason", "Row", "Patient", "Message"]


class ProblemList(QTreeWidget):
    patient_selected = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("problem_list")
        self.setColumnCount(len(COLUMNS))
        self.setHeaderLabels(COLUMNS)
        self.setRootIsDecorated(False)
        self.setAlternatingRowColors(True)
        self.setWordWrap(True)
        self.itemSelectionChanged.connect(self._on_selection)

    def show_problems(self, problems: list[Any]) -> None:
        self.clear()
        order = sorted(problems, key=lambda p: (p.severity != "error", p.row or 0))
        for prob in order:
            item = QTreeWidgetItem([
                prob.severity, prob.reason, "" if prob.row is None else str(prob.row),
                prob.patient_id or "", prob.message,
            ])  # fmt: skip
            item.setToolTip(4, prob.message + (f"\n{prob.file}" if prob.file else ""))
            item.setData(0, Qt.UserRole, prob.patient_id)
            color = "#b00020" if prob.severity == "error" else "#8a6d00"
            item.setForeground(0, QBrush(QColor(color)))
            self.addTopLevelItem(item)
        if not problems:
            self.addTopLevelItem(QTreeWidgetItem(["", "", "", "", "No problems found."]))
        for col in range(4):
            self.resizeColumnToContents(col)

    def _on_selection(self) -> None:
        items = self.selectedItems()
        pid = items[0].data(0, Qt.UserRole) if items else None
        if pid:
            self.patient_selected.emit(pid)
