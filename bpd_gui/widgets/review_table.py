"""The run's infants as a sortable, filterable table (rows from core.explain.review)."""

from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtGui import QColor

from core.explain.review import ReviewRow

# (header, value of a row, text of that value); clinical columns only when the run has any
_BASE = (
    ("Infant", lambda r: r.patient_id, str),
    ("Probability", lambda r: r.prob, lambda v: f"{v:.3f}"),
    ("Result", lambda r: r.outcome, str),
    ("Outcome", lambda r: r.label, lambda v: "positive" if v else "negative"),
    ("Fold", lambda r: r.fold, str),
    ("Images", lambda r: len(r.images), str),
)
_CLINICAL = (
    ("GA (weeks)", lambda r: r.gestational_age_weeks, lambda v: f"{v:.1f}"),
    ("Birth weight (g)", lambda r: r.birth_weight_g, lambda v: f"{v:.0f}"),
    ("IRDS", lambda r: r.irds_grade, str),
    ("Sex", lambda r: r.sex, str),
)
RESULT_COLOURS = {"TP": "#2e7d32", "TN": "#2e7d32", "FP": "#c62828", "FN": "#c62828"}
RESULT_TIPS = {
    "TP": "true positive: positive outcome, predicted positive",
    "TN": "true negative: negative outcome, predicted negative",
    "FP": "false positive: negative outcome, predicted positive",
    "FN": "false negative: positive outcome, predicted negative (a missed infant)",
}


class ReviewTableModel(QAbstractTableModel):
    SORT_ROLE = Qt.UserRole + 1

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list[ReviewRow] = []
        self.columns = list(_BASE)
        self.threshold = 0.5

    def set_rows(self, rows: list[ReviewRow], threshold: float) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self.threshold = threshold
        clinical = [c for c in _CLINICAL if any(c[1](r) is not None for r in rows)]
        self.columns = list(_BASE) + clinical
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section, orientation, role=Qt.DisplayRole):
        if orientation == Qt.Horizontal and role == Qt.DisplayRole:
            return self.columns[section][0]
        if orientation == Qt.Horizontal and role == Qt.ToolTipRole and section == 2:
            return f"TP / FP / TN / FN at the run's threshold {self.threshold:.2f}"
        return None

    def data(self, index, role=Qt.DisplayRole):
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        _, value_of, text_of = self.columns[index.column()]
        value = value_of(row)
        if role == Qt.DisplayRole:
            return "–" if value is None else text_of(value)
        if role == self.SORT_ROLE:
            return value if value is not None else float("-inf")
        if role == Qt.ForegroundRole and self.columns[index.column()][0] == "Result":
            return QColor(RESULT_COLOURS.get(row.outcome, "#000000"))
        if role == Qt.ToolTipRole and self.columns[index.column()][0] == "Result":
            return RESULT_TIPS.get(row.outcome)
        if role == Qt.UserRole:
            return row.patient_id
        return None


class ReviewFilter(QSortFilterProxyModel):
    """Text filter on the infant id, and a result filter (all, errors, TP, FP, TN, FN)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setSortRole(ReviewTableModel.SORT_ROLE)
        self.text = ""
        self.result = "all"

    def set_text(self, text: str) -> None:
        self.beginFilterChange()
        self.text = text.strip().lower()
        self.endFilterChange()

    def set_result(self, result: str) -> None:
        self.beginFilterChange()
        self.result = result
        self.endFilterChange()

    def filterAcceptsRow(self, source_row, source_parent) -> bool:
        row = self.sourceModel().rows[source_row]
        if self.text and self.text not in row.patient_id.lower():
            return False
        if self.result == "errors":
            return row.outcome in ("FP", "FN")
        return self.result == "all" or row.outcome == self.result
