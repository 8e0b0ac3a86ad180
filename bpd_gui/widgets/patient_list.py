"""Patients of a cohort with thumbnails of their first image, loaded off the GUI thread."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem

from bpd_gui.workers import TaskRunner, load_thumbnail

THUMB = 64
COLUMNS = ["", "Patient", "Outcome", "Label", "Images", "GA (wk)", "Weight (g)", "IRDS", "Sex"]


class PatientList(QTreeWidget):
    patient_selected = Signal(str)  # patient_id

    def __init__(self, tasks: TaskRunner, parent=None):
        super().__init__(parent)
        self.setObjectName("patient_list")
        self.tasks = tasks
        self.setColumnCount(len(COLUMNS))
        self.setHeaderLabels(COLUMNS)
        self.setRootIsDecorated(False)
        self.setIconSize(QSize(THUMB, THUMB))
        self.setUniformRowHeights(True)
        self.setAlternatingRowColors(True)
        self.setSortingEnabled(True)
        self._items: dict[str, QTreeWidgetItem] = {}
        self._generation = 0
        self.thumbnails_loaded = 0
        self.itemSelectionChanged.connect(self._on_selection)

    def show_cohort(self, cohort: Any) -> None:
        self._generation += 1  # thumbnails still on their way belong to the old cohort
        self.thumbnails_loaded = 0
        self.setSortingEnabled(False)
        self.clear()
        self._items = {}
        for p in cohort.patients:
            c = p.clinical
            item = QTreeWidgetItem([
                "", p.patient_id, p.outcome_raw, "positive" if p.label else "negative",
                str(len(p.images)), _fmt(c.gestational_age_weeks, 1), _fmt(c.birth_weight_g, 0),
                _fmt(c.irds_grade, 0), c.sex or "",
            ])  # fmt: skip
            item.setData(0, Qt.UserRole, p.patient_id)
            self.addTopLevelItem(item)
            self._items[p.patient_id] = item
            if p.images:
                self._load_thumb(p.patient_id, p.images[0].path)
        grey = QBrush(QColor("#888"))
        for ex in cohort.exclusions:
            if ex.patient_id in self._items:
                continue
            item = QTreeWidgetItem(["", ex.patient_id, "", f"excluded: {ex.reason}"])
            item.setData(0, Qt.UserRole, ex.patient_id)
            item.setToolTip(3, ex.message)
            for col in range(len(COLUMNS)):
                item.setForeground(col, grey)
            self.addTopLevelItem(item)
            self._items[ex.patient_id] = item
        self.setSortingEnabled(True)
        self.sortByColumn(1, Qt.AscendingOrder)
        for col in range(1, len(COLUMNS)):
            self.resizeColumnToContents(col)
        self.setColumnWidth(0, THUMB + 12)

    def _load_thumb(self, patient_id: str, path: Any) -> None:
        gen = self._generation
        self.tasks.submit(
            load_thumbnail,
            path,
            THUMB,
            on_done=lambda img, pid=patient_id, g=gen: self._set_thumb(pid, img, g),
            on_error=lambda msg, pid=patient_id, g=gen: self._thumb_failed(pid, msg, g),
        )

    def _set_thumb(self, patient_id: str, image: QImage, generation: int) -> None:
        item = self._items.get(patient_id)
        if generation != self._generation or item is None:
            return
        item.setIcon(0, QIcon(QPixmap.fromImage(image)))
        self.thumbnails_loaded += 1

    def _thumb_failed(self, patient_id: str, message: str, generation: int) -> None:
        item = self._items.get(patient_id)
        if generation == self._generation and item is not None:
            item.setText(0, "⚠")
            item.setToolTip(0, f"Cannot show this image: {message}")
            item.setForeground(0, QBrush(QColor("#b00020")))

    def select_patient(self, patient_id: str) -> bool:
        item = self._items.get(patient_id)
        if item is None:
            return False
        self.setCurrentItem(item)
        self.scrollToItem(item)
        return True

    def selected_patient(self) -> str | None:
        items = self.selectedItems()
        return items[0].data(0, Qt.UserRole) if items else None

    def _on_selection(self) -> None:
        pid = self.selected_patient()
        if pid is not None:
            self.patient_selected.emit(pid)


def _fmt(value: Any, digits: int) -> str:
    if value is None:
        return ""
    return f"{float(value):.{digits}f}"
