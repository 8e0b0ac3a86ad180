"""The Start page."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

NOTICE = (
    "Research use only. BPD Studio is not a medical device and must not be used "
    "for diagnosis or treatment decisions."
)


class StartView(QWidget):
    open_demo = Signal()
    open_table = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        title = QLabel("<h1>BPD Studio</h1>")
        text = QLabel(
            "Fine-tune, evaluate and inspect day-1 chest radiograph models for "
            "bronchopulmonary dysplasia, following Goedicke-Fritz et al. (2025): an "
            "adult-chest-X-ray backbone, linear probe, then progressive layer unfreezing "
            "with CutMix, scored by repeated patient-level cross-validation.<br><br>"
            "1. Open a cohort: a table (CSV/XLSX) with one row per image and its outcome.<br>"
            "2. Map its columns and outcome values, and check every image.<br>"
            "3. Train: the paper's recipe, or a fast CPU preset; watch loss and AUROC live."
        )
        text.setWordWrap(True)
        self.demo_button = QPushButton("Open demo cohort")
        self.demo_button.setObjectName("demo_button")
        self.demo_button.setToolTip("A small public chest X-ray cohort shipped with the app")
        self.demo_button.clicked.connect(self.open_demo)
        self.table_button = QPushButton("Open your own table…")
        self.table_button.clicked.connect(self.open_table)
        notice = QLabel(NOTICE)
        notice.setObjectName("notice")
        notice.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(48, 36, 48, 36)
        layout.addWidget(title)
        layout.addWidget(text)
        layout.addSpacing(16)
        for b in (self.demo_button, self.table_button):
            b.setMinimumHeight(40)
            b.setMaximumWidth(320)
            layout.addWidget(b)
        layout.addStretch(1)
        layout.addWidget(notice)
