"""Map table columns to roles and outcome values to positive / negative / exclude.

Guesses come from the header (core.cohort.mapping.guess_mapping); the preview shows the
first rows with the chosen columns highlighted, and the outcome table counts each value.
A value marked "exclude" excludes its patients with the reason; the "every other value
is negative" tick is the command line's --negative-rest. Counts are patients (distinct
ids of the chosen patient column), as the Cohort page counts them, not table rows. A
table with one row per patient finds its images by a pattern (--image-pattern); a
workbook with several sheets offers them (--sheet).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from bpd_gui.dialogs.outcome_guess import CHOICES, guess_outcome_choice

NONE = "(not in table)"
PREVIEW_ROWS = 20
ROLES = (  # (ColumnMapping field, label, required)
    ("patient_id", "Patient ID", True),
    ("image", "Image file", False),
    ("outcome", "Outcome", True),
    ("gestational_age", "Gestational age", False),
    ("birth_weight", "Birth weight", False),
    ("irds", "IRDS grade", False),
    ("sex", "Sex", False),
)


def sheet_note(frame: Any) -> str:
    """ "Read from sheet 'Daten' (workbook sheets: ...)" for a workbook of several sheets."""
    attrs = getattr(frame, "attrs", {}) or {}
    sheets = attrs.get("sheets") or []
    if len(sheets) < 2:
        return ""
    listed = ", ".join(f"'{s}'" for s in sheets)
    return f"Read from sheet '{attrs.get('sheet')}' (workbook sheets: {listed})"


PATTERN_HINT = "{patient_id}_*.png"


def patients_per_value(frame: Any, outcome_column: str, patient_column: str) -> dict[str, int]:
    """Distinct patient ids per outcome value (trimmed, as the loader reads them; rows
    without an id do not count): several images of one infant count once."""
    ids: dict[str, set[str]] = {}
    for value, pid in zip(frame[outcome_column].tolist(), frame[patient_column].tolist(),
                          strict=True):  # fmt: skip
        pid = str(pid).strip()
        bucket = ids.setdefault(str(value).strip(), set())
        if pid:
            bucket.add(pid)
    return {v: len(p) for v, p in ids.items()}


def sheet_names(frame: Any) -> list[str]:
    return list((getattr(frame, "attrs", {}) or {}).get("sheets") or [])


def _patients(n: int) -> str:
    return f"{n} patient{'' if n == 1 else 's'}"


class MappingDialog(QDialog):
    sheet_chosen = Signal(str)  # the user picked another workbook sheet: read it instead

    def __init__(
        self,
        frame: Any,
        mapping: Any = None,
        outcome: Any = None,
        parent=None,
        image_pattern: str | None = None,
    ):
        """frame: DataFrame of str; mapping: ColumnMapping or None (guessed); outcome:
        OutcomeMapping or None (guessed from the values); image_pattern: the earlier
        pattern of a one-row-per-patient table."""
        from core.cohort.mapping import guess_mapping

        super().__init__(parent)
        self.setWindowTitle("Map the table's columns")
        self.resize(980, 640)
        self.frame = frame
        self.columns = [str(c) for c in frame.columns]
        self._prior_outcome = outcome
        guess = mapping if mapping is not None else guess_mapping(self.columns)

        self.combos: dict[str, QComboBox] = {}
        form = QFormLayout()
        for field, label, required in ROLES:
            combo = QComboBox()
            combo.setObjectName(f"map_{field}")
            combo.addItems(([] if required else [NONE]) + self.columns)
            current = getattr(guess, field, None)
            if current in self.columns:
                combo.setCurrentText(current)
            combo.currentTextChanged.connect(self._refresh)
            self.combos[field] = combo
            form.addRow(label + (" *" if required else ""), combo)
        self.pattern = QLineEdit(image_pattern or "")
        self.pattern.setObjectName("image_pattern")
        self.pattern.setPlaceholderText(f"e.g. {PATTERN_HINT} (one row per patient)")
        self.pattern.setToolTip(
            "For a table with one row per patient and no image column: each patient's "
            "images are the files under the images folder matching this pattern, "
            f"{{patient_id}} standing for the id ({PATTERN_HINT}, or {{patient_id}}/* for "
            "a folder per patient). Empty: <id>_* or <id>.* or a folder named <id>. "
            "Set Image file to '(not in table)' to use it (bpd train --image-pattern)."
        )
        self.pattern.textChanged.connect(self._check)
        form.addRow("Image pattern", self.pattern)
        if image_pattern and mapping is None:  # a pattern means no image column
            self.combos["image"].blockSignals(True)  # the dialog is not built yet
            self.combos["image"].setCurrentText(NONE)
            self.combos["image"].blockSignals(False)
        columns_box = QGroupBox("Columns")
        columns_box.setLayout(form)

        self.outcome_table = QTableWidget(0, 3)
        self.outcome_table.setObjectName("outcome_values")
        self.outcome_table.setHorizontalHeaderLabels(["Value", "Patients", "Counts as"])
        self.outcome_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self.outcome_table.verticalHeader().setVisible(False)
        self.balance_label = QLabel()
        self.negative_rest = QCheckBox("Count every other recorded value as negative")
        self.negative_rest.setObjectName("negative_rest")
        self.negative_rest.setToolTip(
            "Off: a value marked 'exclude' (or one the table gains later) excludes its "
            "patients, with the reason. On: every recorded value not marked positive is "
            "negative (--negative-rest)."
        )
        self.negative_rest.setChecked(bool(getattr(outcome, "negative_rest", False)))
        self.negative_rest.toggled.connect(self._on_negative_rest)
        outcome_box = QGroupBox("Outcome values")
        outcome_layout = QVBoxLayout(outcome_box)
        outcome_layout.addWidget(self.outcome_table)
        outcome_layout.addWidget(self.negative_rest)
        outcome_layout.addWidget(self.balance_label)

        self.preview = QTableWidget()
        self.preview.setObjectName("preview")
        self.preview.setEditTriggers(QTableWidget.NoEditTriggers)
        self.message = QLabel()
        self.message.setObjectName("mapping_message")
        self.message.setStyleSheet("color: #b00020;")
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        top = QHBoxLayout()
        top.addWidget(columns_box, 1)
        top.addWidget(outcome_box, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        self.sheet_label = QLabel(sheet_note(frame))  # which sheet of a workbook was read
        self.sheet_label.setObjectName("sheet_note")
        self.sheet_label.setVisible(bool(self.sheet_label.text()))
        self.sheet_choice = QComboBox()  # another sheet: the view reads it and reopens
        self.sheet_choice.setObjectName("sheet_choice")
        self.sheet_choice.addItems(sheet_names(frame))
        self.sheet_choice.setCurrentText(str(frame.attrs.get("sheet") or ""))
        self.sheet_choice.setToolTip("Read another sheet of the workbook (bpd --sheet NAME)")
        self.sheet_choice.textActivated.connect(self._on_sheet)
        sheet_row = QHBoxLayout()
        sheet_row.addWidget(self.sheet_label, 1)
        sheet_row.addWidget(QLabel("Sheet:"))
        sheet_row.addWidget(self.sheet_choice)
        for i in range(sheet_row.count()):
            sheet_row.itemAt(i).widget().setVisible(len(sheet_names(frame)) > 1)
        # several sheets looked like data: this one is a first guess, say so
        self.sheet_warning = QLabel(str(frame.attrs.get("sheet_problem") or ""))
        self.sheet_warning.setObjectName("sheet_warning")
        self.sheet_warning.setWordWrap(True)
        self.sheet_warning.setStyleSheet("color: #8a6d00;")
        self.sheet_warning.setVisible(bool(self.sheet_warning.text()))
        layout.addLayout(sheet_row)
        layout.addWidget(self.sheet_warning)
        layout.addWidget(QLabel(f"First {PREVIEW_ROWS} rows of {len(frame)}:"))
        layout.addWidget(self.preview, 1)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)
        self._outcome_column: str | None = None
        self._refresh()

    # --- live preview ---------------------------------------------------------------
    def _refresh(self, *_: Any) -> None:
        self._fill_preview()
        outcome_col = self.combos["outcome"].currentText()
        if outcome_col != self._outcome_column:
            self._outcome_column = outcome_col
            self._fill_outcome_values(outcome_col)
        else:  # another patient column: same values, new patient counts
            self._fill_counts()
        self._check()

    def _on_sheet(self, name: str) -> None:
        if name != self.frame.attrs.get("sheet"):
            self.sheet_chosen.emit(name)

    def _counts(self, column: str) -> dict[str, int]:
        from core.cohort.mapping import outcome_value_counts

        if column not in self.columns:
            return {}
        pid = self.combos["patient_id"].currentText()
        if pid in self.columns and pid != column:
            return patients_per_value(self.frame, column, pid)
        return outcome_value_counts(self.frame, column)  # no usable id column: rows

    def _fill_counts(self) -> None:
        counts = self._counts(self._outcome_column or "")
        for r in range(self.outcome_table.rowCount()):
            value = self.outcome_table.item(r, 0).data(Qt.UserRole)
            self.outcome_table.item(r, 1).setText(str(counts.get(value, 0)))

    def _fill_preview(self) -> None:
        head = self.frame.head(PREVIEW_ROWS)
        roles_by_column = {}
        for field, label, _ in ROLES:
            col = self.combos[field].currentText()
            if col != NONE:
                roles_by_column.setdefault(col, []).append(label)
        self.preview.setRowCount(len(head))
        self.preview.setColumnCount(len(self.columns))
        headers = []
        for c, col in enumerate(self.columns):
            roles = roles_by_column.get(col)
            headers.append(f"{col}\n→ {', '.join(roles)}" if roles else f"{col}\n")
            for r in range(len(head)):
                item = QTableWidgetItem(str(head.iat[r, c]))
                if roles:
                    item.setBackground(QColor("#e3f0fb"))
                self.preview.setItem(r, c, item)
        self.preview.setHorizontalHeaderLabels(headers)
        self.preview.resizeColumnsToContents()

    def _fill_outcome_values(self, column: str) -> None:
        from core.cohort.mapping import is_not_recorded

        counts = self._counts(column)
        prior = self._prior_outcome
        self.outcome_table.setRowCount(len(counts))
        for r, (value, n) in enumerate(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))):
            self.outcome_table.setItem(r, 0, QTableWidgetItem(value if value else "(empty)"))
            self.outcome_table.item(r, 0).setData(Qt.UserRole, value)
            count_item = QTableWidgetItem(str(n))
            count_item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
            self.outcome_table.setItem(r, 1, count_item)
            combo = QComboBox()
            combo.addItems(CHOICES)
            if prior is not None and value in prior.positive:
                combo.setCurrentText("positive")
            elif prior is not None and value in prior.negative:
                combo.setCurrentText("negative")
            elif prior is not None:  # not named: negative only under "every other value"
                rest = getattr(prior, "negative_rest", False) and not is_not_recorded(value)
                combo.setCurrentText("negative" if rest else "exclude")
            else:
                combo.setCurrentText(guess_outcome_choice(value))
            combo.currentTextChanged.connect(self._check)
            self.outcome_table.setCellWidget(r, 2, combo)
        self._prior_outcome = None  # only the first fill follows the earlier choice

    def outcome_choices(self) -> dict[str, str]:
        out = {}
        for r in range(self.outcome_table.rowCount()):
            value = self.outcome_table.item(r, 0).data(Qt.UserRole)
            out[value] = self.outcome_table.cellWidget(r, 2).currentText()
        return out

    def set_outcome_choice(self, value: str, choice: str) -> None:
        for r in range(self.outcome_table.rowCount()):
            if self.outcome_table.item(r, 0).data(Qt.UserRole) == value:
                self.outcome_table.cellWidget(r, 2).setCurrentText(choice)
                return
        raise KeyError(value)

    def _on_negative_rest(self, on: bool) -> None:
        """Ticked: every recorded value marked "exclude" becomes negative, as it will count."""
        from core.cohort.mapping import is_not_recorded

        if on:
            for value, choice in self.outcome_choices().items():
                if choice == "exclude" and not is_not_recorded(value):
                    self.set_outcome_choice(value, "negative")
        self._check()

    def _check(self, *_: Any) -> None:
        counts = {}
        for r in range(self.outcome_table.rowCount()):
            choice = self.outcome_table.cellWidget(r, 2).currentText()
            counts[choice] = counts.get(choice, 0) + int(self.outcome_table.item(r, 1).text())
        shown = (("positive", "positive"), ("negative", "negative"), ("excluded", "exclude"))
        self.balance_label.setText(
            " · ".join(f"{name}: {_patients(counts.get(choice, 0))}" for name, choice in shown)
        )
        problem = self.problem()
        self.message.setText(problem or "")
        self.buttons.button(QDialogButtonBox.Ok).setEnabled(problem is None)

    def problem(self) -> str | None:
        picked = [self.combos[f].currentText() for f, _, _ in ROLES]
        used = [c for c in picked if c != NONE]
        if len(used) != len(set(used)):
            return "Each column can have only one role."
        pattern = self.image_pattern()
        if pattern and self.combos["image"].currentText() != NONE:
            return (
                "Give either an image column or an image pattern: set Image file to "
                "'(not in table)' to find the images by the pattern."
            )
        if pattern and "{patient_id}" not in pattern:
            return f"The image pattern must contain {{patient_id}}, e.g. {PATTERN_HINT}."
        from core.cohort.mapping import is_not_recorded

        outcome = self.outcome_choices()
        choices = set(outcome.values())
        if "positive" not in choices or "negative" not in choices:
            return "Mark at least one outcome value positive and one negative."
        if self.negative_rest.isChecked():
            excluded = [v for v, c in outcome.items() if c == "exclude" and not is_not_recorded(v)]
            if excluded:
                return (
                    f"'{excluded[0]}' is marked exclude, but every other value counts as "
                    "negative: untick that box to exclude it."
                )
        return None

    # --- result -----------------------------------------------------------------------
    def image_pattern(self) -> str | None:
        return self.pattern.text().strip() or None

    def sheet(self) -> str | None:
        """The workbook sheet shown (None for a text table or a one-sheet workbook)."""
        return self.frame.attrs.get("sheet") if len(sheet_names(self.frame)) > 1 else None

    def column_mapping(self) -> Any:
        from core.cohort.mapping import ColumnMapping

        chosen = {f: self.combos[f].currentText() for f, _, _ in ROLES}
        return ColumnMapping(**{f: (None if c == NONE else c) for f, c in chosen.items()})

    def outcome_mapping(self) -> Any:
        from core.cohort.mapping import OutcomeMapping

        choices = self.outcome_choices()
        return OutcomeMapping(
            positive=tuple(v for v, c in choices.items() if c == "positive"),
            negative=tuple(v for v, c in choices.items() if c == "negative"),
            negative_rest=self.negative_rest.isChecked(),
        )
