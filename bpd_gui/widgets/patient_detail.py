"""The selected patient: images (decoded off the GUI thread), clinical values, problems."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from bpd_gui.workers import TaskRunner, load_thumbnail

PREVIEW = 200
MAX_IMAGES = 3


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
        self._image_labels: list[QLabel] = []

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
            label = QLabel("loading…")
            label.setFixedSize(PREVIEW, PREVIEW)
            label.setAlignment(Qt.AlignCenter)
            label.setToolTip(str(record.path))
            label.setStyleSheet("background: #111; color: #ccc;")
            self.images_row.insertWidget(i, label)
            self._image_labels.append(label)
            self.tasks.submit(
                load_thumbnail,
                record.path,
                PREVIEW,
                on_done=lambda img, lab=label, g=gen: self._set_image(lab, img, g),
                on_error=lambda msg, lab=label, g=gen: self._set_error(lab, msg, g),
            )

    def _set_image(self, label: QLabel, image: QImage, generation: int) -> None:
        if generation == self._generation:
            label.setPixmap(QPixmap.fromImage(image))

    def _set_error(self, label: QLabel, message: str, generation: int) -> None:
        if generation == self._generation:
            label.setWordWrap(True)
            label.setText(message)


def _esc(text: Any) -> str:
    import html

    return html.escape(str(text))
