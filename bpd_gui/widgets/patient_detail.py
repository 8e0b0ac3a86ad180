"""The selected patient: images (decoded off the GUI thread), clinical values, problems.

The first MAX_IMAGES radiographs are shown beside the values; a patient with more gets a
"+N more" button that opens every image of the patient in a window."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from bpd_gui.workers import TaskRunner, load_thumbnail

PREVIEW = 200
MAX_IMAGES = 3
GRID_COLUMNS = 4


def image_tile(tasks: TaskRunner, record: Any, size: int, is_current) -> QLabel:
    """A dark square that shows the image once a worker has decoded it (or why not)."""
    label = QLabel("loading…")
    label.setFixedSize(size, size)
    label.setAlignment(Qt.AlignCenter)
    label.setToolTip(str(record.path))
    label.setStyleSheet("background: #111; color: #ccc;")

    def done(image: QImage) -> None:
        if is_current():
            label.setPixmap(QPixmap.fromImage(image))

    def failed(message: str) -> None:
        if is_current():
            label.setWordWrap(True)
            label.setText(message)

    tasks.submit(load_thumbnail, record.path, size, on_done=done, on_error=failed)
    return label


class PatientImagesDialog(QDialog):
    """Every image of one patient, in a grid, each named under its picture."""

    def __init__(self, tasks: TaskRunner, patient: Any, parent=None):
        super().__init__(parent)
        self.setWindowTitle(f"Patient {patient.patient_id}: {len(patient.images)} images")
        self._open = True
        grid_widget = QWidget()
        grid = QGridLayout(grid_widget)
        self.tiles: list[QLabel] = []
        for i, record in enumerate(patient.images):
            tile = image_tile(tasks, record, PREVIEW, lambda: self._open)
            name = QLabel(Path(str(record.path)).name)
            name.setObjectName("image_name")
            name.setWordWrap(True)
            name.setMaximumWidth(PREVIEW)
            name.setToolTip(str(record.path))
            box = QVBoxLayout()
            box.addWidget(tile)
            box.addWidget(name)
            grid.addLayout(box, i // GRID_COLUMNS, i % GRID_COLUMNS)
            self.tiles.append(tile)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(grid_widget)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(scroll, 1)
        layout.addWidget(buttons)
        columns = min(GRID_COLUMNS, len(patient.images))
        self.resize(columns * (PREVIEW + 16) + 48, 560)
        self.finished.connect(lambda *_: setattr(self, "_open", False))


class PatientDetail(QWidget):
    def __init__(self, tasks: TaskRunner, parent=None):
        super().__init__(parent)
        self.tasks = tasks
        self._generation = 0
        self.title = QLabel("Select a patient to see their images.")
        self.title.setObjectName("patient_title")
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.images_row = QHBoxLayout()
        self.images_row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addLayout(self.images_row)
        layout.addStretch(1)
        self._image_labels: list[QWidget] = []
        self.images_dialog: PatientImagesDialog | None = None

    def show_patient(self, cohort: Any, patient_id: str) -> None:
        self._generation += 1
        for label in self._image_labels:
            label.deleteLater()
        self._image_labels = []
        patient = next((p for p in cohort.patients if p.patient_id == patient_id), None)
        problems = [p for p in cohort.problems if p.patient_id == patient_id]
        exclusion = next((e for e in cohort.exclusions if e.patient_id == patient_id), None)
        lines = [f"<b>Patient {_esc(patient_id)}</b>"]
        if patient is not None:
            c = patient.clinical
            lines.append(
                f"Outcome {_esc(patient.outcome_raw)} → "
                f"{'positive' if patient.label else 'negative'} · {len(patient.images)} image(s)"
                f" · table row {patient.row}"
            )
            values = [
                f"GA {c.gestational_age_weeks:.1f} wk" if c.gestational_age_weeks else "",
                f"{c.birth_weight_g:.0f} g" if c.birth_weight_g else "",
                f"IRDS {c.irds_grade}" if c.irds_grade is not None else "",
                f"sex {c.sex}" if c.sex else "",
            ]
            if any(values):
                lines.append(" · ".join(v for v in values if v))
        if exclusion is not None:
            lines.append(f"<span style='color:#b00020'>Excluded: {_esc(exclusion.message)}</span>")
        for prob in problems:
            color = "#b00020" if prob.severity == "error" else "#8a6d00"
            text = f"{prob.severity}: {_esc(prob.message)}"
            lines.append(f"<span style='color:{color}'>{text}</span>")
        self.title.setText("<br>".join(lines))
        if patient is None:
            return
        gen = self._generation
        for i, record in enumerate(patient.images[:MAX_IMAGES]):
            label = image_tile(self.tasks, record, PREVIEW, lambda g=gen: g == self._generation)
            self.images_row.insertWidget(i, label)
            self._image_labels.append(label)
        hidden = len(patient.images) - MAX_IMAGES
        if hidden > 0:
            more = QPushButton(f"+{hidden} more")
            more.setObjectName("more_images")
            more.setToolTip(f"Show all {len(patient.images)} images of patient {patient_id}")
            more.clicked.connect(lambda _=False, p=patient: self.show_all_images(p))
            self.images_row.insertWidget(MAX_IMAGES, more)
            self._image_labels.append(more)

    def show_all_images(self, patient: Any) -> PatientImagesDialog:
        self.images_dialog = PatientImagesDialog(self.tasks, patient, self)
        self.images_dialog.open()
        return self.images_dialog


def _esc(text: Any) -> str:
    import html

    return html.escape(str(text))
