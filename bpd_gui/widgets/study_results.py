"""A study's arms (`bpd study`): their table and a forest plot of the mean fold AUROC with
the corrected resampled-t 95% CI, read through core.study and core.evaluation (no
torch), as the study's report.html shows them."""

from __future__ import annotations

import math
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core import paths
from core.errors import BPDError
from core.evaluation.run_data import load_run
from core.evaluation.study_report_stats import corrected_ci
from core.study.folder import StudyFolder
from core.study.report import study_arms

COLUMNS = ["Arm", "Init and strategy", "Status", "AUROC mean ± SD", "95% CI (corrected)",
           "Bal. acc.", "F1"]  # fmt: skip


def find_studies(parent: Path | None = None) -> list[Path]:
    """Study folders under the runs folder, newest first."""
    parent = parent or paths.runs_dir()
    found = (
        [p for p in parent.iterdir() if StudyFolder.looks_like_study(p)] if parent.is_dir() else []
    )
    return sorted(found, key=lambda p: p.name, reverse=True)


def study_rows(study_dir: Path) -> list[dict]:
    """One row per arm: name, title, status, AUROC mean/sd, CI, balanced accuracy, F1."""
    rows = []
    for arm in study_arms(StudyFolder.existing(study_dir)):
        row = {"name": arm.name, "title": arm.title, "status": arm.status, "note": arm.note,
               "auroc": None, "sd": None, "ci": None, "bal": None, "f1": None}  # fmt: skip
        if arm.status == "finished" and arm.run_dir is not None:
            try:
                run = load_run(arm.run_dir)
            except BPDError as exc:
                row["note"] = str(exc)
            else:
                s = run.summary
                row["auroc"] = (s.get("auroc") or {}).get("mean")
                row["sd"] = (s.get("auroc") or {}).get("sd")
                row["bal"] = (s.get("balanced_accuracy") or {}).get("mean")
                row["f1"] = (s.get("f1") or {}).get("mean")
                row["ci"] = corrected_ci(run)
        rows.append(row)
    return rows


def _n(x) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


class StudyResults(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.picker = QComboBox()
        self.picker.setObjectName("study_picker")
        self.picker.currentIndexChanged.connect(
            lambda _i: self.show_study(self.picker.currentData())
        )
        self.note = QLabel()
        self.note.setObjectName("study_note")
        self.note.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("study_table")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        # the long arm description would push the numbers off screen: narrow, full in tooltip
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.Interactive)
        self.table.setColumnWidth(1, 160)
        self.forest = pg.PlotWidget()
        self.forest.setTitle("Fold AUROC, 95% CI", size="10pt")
        self.forest.setLabel("bottom", "AUROC (CI: corrected resampled t)")
        self.forest.setMouseEnabled(x=False, y=False)
        self.forest.showGrid(x=True, y=False, alpha=0.25)
        row = QHBoxLayout()
        row.addWidget(QLabel("Study:"))
        row.addWidget(self.picker, 1)
        split = QSplitter(Qt.Horizontal)
        split.addWidget(self.table)
        split.addWidget(self.forest)
        split.setSizes([720, 330])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.note)
        layout.addWidget(split, 1)
        self.rows: list[dict] = []

    def refresh(self) -> None:
        chosen = self.picker.currentData()
        studies = find_studies()
        self.picker.blockSignals(True)
        self.picker.clear()
        for p in studies:
            self.picker.addItem(p.name, str(p))
        index = self.picker.findData(chosen) if chosen else 0
        self.picker.setCurrentIndex(max(index, 0))
        self.picker.blockSignals(False)
        self.show_study(self.picker.currentData())

    def show_study(self, study_dir: str | None) -> None:
        self.forest.clear()
        self.table.setRowCount(0)
        self.rows = []
        if not study_dir:
            self.note.setText("No study yet: the Train page's “Start study” runs the paper's "
                              "init × strategy grid (bpd study).")  # fmt: skip
            return
        try:
            self.rows = study_rows(Path(study_dir))
        except BPDError as exc:
            self.note.setText(f"This study cannot be read: {exc}")
            return
        done = sum(r["status"] == "finished" for r in self.rows)
        self.note.setText(
            f"{done} of {len(self.rows)} arms finished, all on identical folds and seeds. "
            "The paired tests between arms are in the study's report.html."
        )
        self.table.setRowCount(len(self.rows))
        for i, r in enumerate(self.rows):
            ci = f"{_n(r['ci'][0])} – {_n(r['ci'][1])}" if r["ci"] else "–"
            mean = f"{_n(r['auroc'])} ± {_n(r['sd'])}" if r["auroc"] is not None else "–"
            cells = [r["name"], r["title"], r["status"], mean, ci, _n(r["bal"]), _n(r["f1"])]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c >= 3:
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                tip = r["note"] or (text if c == 1 else "")
                if tip:
                    item.setToolTip(tip)
                self.table.setItem(i, c, item)
        self._draw_forest()

    def _draw_forest(self) -> None:
        shown = [r for r in self.rows if r["auroc"] is not None]
        best = max((r["auroc"] for r in shown), default=None)
        ticks = []
        for y, r in enumerate(reversed(shown)):
            low, high = r["ci"] or (r["auroc"], r["auroc"])
            color = "#b00020" if r["auroc"] == best else "#08519c"
            self.forest.plot([low, high], [y, y], pen=pg.mkPen(color, width=2))
            self.forest.plot([r["auroc"]], [y], pen=None, symbol="s", symbolSize=9,
                             symbolBrush=color)  # fmt: skip
            ticks.append((y, r["name"]))
        self.forest.addItem(pg.InfiniteLine(pos=0.5, angle=90, pen=pg.mkPen("#aaa", width=1)))
        self.forest.getAxis("left").setTicks([ticks])
        self.forest.setXRange(0.3, 1.0, padding=0.02)
        if ticks:
            self.forest.setYRange(-0.7, len(ticks) - 0.3, padding=0)
