"""Patients of a cohort with thumbnails of their first image, loaded off the GUI thread,
and whether their images have a crop box (the cohort's TABLE.crops.csv, core.cohort.crops).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem

from bpd_gui.workers import TaskRunner, load_thumbnail

THUMB = 64
COLUMNS = ["", "Patient", "Outcome", "Label", "Images", "Box", "GA (wk)", "Weight (g)", "IRDS",
           "Sex"]  # fmt: skip
BOX_COLUMN = COLUMNS.index("Box")
# a box's source as the table shows it: "auto?" is a suggestion nobody reviewed (unused)
BOX_MARKS = {"manual": "manual", "accepted": "accepted", "auto": "auto?"}
NO_BOX = "—"
BOX_TIP = ("Crop box of the patient's images (TABLE.crops.csv): manual = drawn by a person, "
           "accepted = an automatic box a person accepted (both used in training), "
           "auto? = an automatic suggestion not reviewed yet (not used), "
           "— = none (the whole image)")  # fmt: skip


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
                str(len(p.images)), "", _fmt(c.gestational_age_weeks, 1),
                _fmt(c.birth_weight_g, 0),
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

    def show_box_marks(self, marks: dict[str, tuple[str, str]]) -> None:
        """(text, tooltip) of the Box column by patient (box_marks)."""
        for patient_id, (text, tip) in marks.items():
            item = self._items.get(patient_id)
            if item is not None:
                item.setText(BOX_COLUMN, text)
                item.setToolTip(BOX_COLUMN, tip)
        self.headerItem().setToolTip(BOX_COLUMN, BOX_TIP)
        self.resizeColumnToContents(BOX_COLUMN)

    def box_mark(self, patient_id: str) -> str:
        item = self._items.get(patient_id)
        return item.text(BOX_COLUMN) if item is not None else ""

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


def hash_images(paths: Iterable[Path], known: dict[Path, str]) -> dict[Path, str]:
    """Content hash (the crop table's key) of each image file not in `known`; runs on a
    worker thread. An unreadable file gets "" (its box shows as none)."""
    from core.cohort.crops import file_sha256

    out = {}
    for path in paths:
        if path in known:
            continue
        try:
            out[path] = file_sha256(path)
        except OSError:
            out[path] = ""
    return out


def box_marks(
    patients: Iterable[tuple[str, list[Path]]], shas: dict[Path, str], table: Any
) -> dict[str, tuple[str, str]]:
    """(text, tooltip) per patient from `table` (core.cohort.crops.CropTable): the
    source of its images' boxes when they agree, else how many of them have a used box."""
    out = {}
    for patient_id, paths in patients:
        marks = []
        for path in paths:
            sha = shas.get(path)
            entry = table.entry(sha) if sha else None
            marks.append(BOX_MARKS.get(entry.crop.source, NO_BOX) if entry else NO_BOX)
        if not marks:
            continue
        if len(set(marks)) == 1:
            text = marks[0]
        else:
            used = sum(m in ("manual", "accepted") for m in marks)
            text = f"{used} of {len(marks)}"
        tip = "\n".join(f"{Path(p).name}: {m}" for p, m in zip(paths, marks, strict=True))
        out[patient_id] = (text, tip)
    return out


def _fmt(value: Any, digits: int) -> str:
    if value is None:
        return ""
    return f"{float(value):.{digits}f}"
