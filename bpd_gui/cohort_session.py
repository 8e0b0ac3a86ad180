"""The cohort the user is working on, shared by the Cohort and Train views.

Holds the table, images folder, column and outcome mappings and the last validation
result. Reading and validating run on worker threads; this object only keeps state
and announces changes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal

from bpd_gui.workers import TaskRunner


@dataclass(frozen=True)
class CohortSource:
    """What is needed to load (and later train on) a cohort; JSON for QSettings."""

    table: str
    images_root: str | None
    mapping: dict[str, Any]  # ColumnMapping.to_json()
    outcome: dict[str, Any]  # OutcomeMapping.to_json()
    image_pattern: str | None = None  # one row per patient: e.g. "{patient_id}_*.png"
    sheet: str | None = None  # the workbook sheet, when the workbook has several

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def replace(self, **changes: Any) -> CohortSource:
        return dataclasses.replace(self, **changes)

    def core_source(self) -> Any:
        """core's CohortSource (what validation and a run's RunConfig read), every
        column as mapped here."""
        from core.cohort.mapping import ColumnMapping, OutcomeMapping
        from core.cohort.source import CohortSource as CoreSource

        source = CoreSource.from_mapping(
            self.table,
            ColumnMapping.from_json(self.mapping),
            OutcomeMapping.from_json(self.outcome),
            images_root=self.images_root or None,
            image_pattern=self.image_pattern or None,
            sheet=self.sheet or None,
        )
        from core.cohort.crops import sidecar_path

        # the crop tool's boxes (only those a person drew or accepted are used)
        sidecar = sidecar_path(self.table)
        return source.replace(crops=str(sidecar)) if sidecar.is_file() else source

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CohortSource:
        return cls(
            table=str(data["table"]),
            images_root=data.get("images_root"),
            mapping=dict(data["mapping"]),
            outcome=dict(data["outcome"]),
            image_pattern=data.get("image_pattern") or None,  # absent before this version
            sheet=data.get("sheet") or None,
        )


def read_table_for_mapping(path: str, sheet: str | None = None) -> Any:
    """The table as text. A workbook where several sheets look like data (core refuses
    to guess) opens on its first sheet, with core's reason in attrs["sheet_problem"],
    so the mapping dialog can offer the sheets instead of failing."""
    from core.cohort.table import read_table
    from core.errors import InputError

    try:
        return read_table(path, sheet)
    except InputError as exc:
        if sheet is not None or not str(path).lower().endswith((".xlsx", ".xlsm")):
            raise
        try:
            frame = read_table(path, 1)
        except InputError:
            raise exc from None
        if len(frame.attrs.get("sheets") or []) < 2:
            raise
        frame.attrs["sheet_problem"] = (  # core's reason names --sheet: say it the app's way
            "More than one sheet of this workbook looks like cohort data; showing the first, "
            f"'{frame.attrs['sheet']}'. Choose the sheet that holds the patients (Sheet, on "
            "the right)."
        )
        return frame


def validate(source: CohortSource) -> Any:
    """Table-level validation (no decoding); runs on a worker thread."""
    from core.cohort.loader import load_source

    return load_source(source.core_source())


def guessed_source(table: str, frame: Any, images_root: str | None = None) -> CohortSource:
    from bpd_gui.dialogs.outcome_guess import guess_outcome_choice
    from core.cohort.mapping import OutcomeMapping, guess_mapping, outcome_value_counts

    if frame.attrs.get("sheet_problem"):  # several sheets look like data: the user picks
        raise ValueError(f"{table}: {frame.attrs['sheet_problem']} Open it with Open table….")
    mapping = guess_mapping(list(frame.columns))
    if not mapping.patient_id or not mapping.outcome:
        raise ValueError(
            f"{table}: cannot tell which columns hold the patient id and the outcome; "
            "open it with Open table… and map the columns."
        )
    choices = {v: guess_outcome_choice(v) for v in outcome_value_counts(frame, mapping.outcome)}
    outcome = OutcomeMapping(
        positive=tuple(v for v, c in choices.items() if c == "positive"),
        negative=tuple(v for v, c in choices.items() if c == "negative"),
    )
    sheets = frame.attrs.get("sheets") or []
    sheet = frame.attrs.get("sheet") if len(sheets) > 1 else None
    return CohortSource(str(table), images_root, mapping.to_json(), outcome.to_json(), sheet=sheet)


class CohortSession(QObject):
    table_read = Signal(str, object, bool)  # path, DataFrame of text, user wants the mapping
    validating = Signal()
    cohort_changed = Signal(object)  # Cohort
    failed = Signal(str, str)  # title, readable message

    def __init__(self, tasks: TaskRunner, parent=None):
        super().__init__(parent)
        self.tasks = tasks
        self.source: CohortSource | None = None
        self.cohort = None
        self.table_path: str | None = None
        self.images_root: str | None = None
        self.frame = None
        self._generation = 0

    def read_table(self, path: str, for_mapping: bool = True, sheet: str | None = None) -> None:
        self.tasks.submit(
            read_table_for_mapping,
            path,
            sheet,
            on_done=lambda df, p=path, m=for_mapping: self._on_table(p, df, m),
            on_error=lambda msg: self.failed.emit("Cannot read the table", msg),
        )

    def _on_table(self, path: str, frame: Any, for_mapping: bool) -> None:
        self.table_path, self.frame = path, frame
        self.table_read.emit(path, frame, for_mapping)

    def open_with_guesses(self, path: str, images_root: str | None = None) -> None:
        """One click: read the table, take the guessed mapping as it is, and validate."""

        def read_and_guess(p: str) -> tuple[Any, CohortSource]:
            frame = read_table_for_mapping(p)
            return frame, guessed_source(p, frame, images_root)

        def done(result: tuple[Any, CohortSource]) -> None:
            frame, source = result
            self._on_table(path, frame, False)
            self.apply(source)

        self.tasks.submit(
            read_and_guess,
            path,
            on_done=done,
            on_error=lambda msg: self.failed.emit("Cannot open the cohort", msg),
        )

    def restore(self, source: CohortSource) -> None:
        """Reopen a cohort from an earlier session: validate, and read the table quietly."""
        self.read_table(source.table, for_mapping=False, sheet=source.sheet)
        self.apply(source)

    def set_images_root(self, folder: str | None) -> None:
        self.images_root = folder or None
        if self.source is not None:
            self.apply(self.source.replace(images_root=folder or None))

    def apply(self, source: CohortSource) -> None:
        self.source = source
        self.table_path = source.table
        self.images_root = source.images_root
        self._generation += 1
        gen = self._generation
        self.validating.emit()
        self.tasks.submit(
            validate,
            source,
            on_done=lambda cohort, g=gen: self._on_validated(cohort, g),
            on_error=lambda msg, g=gen: self._on_validation_failed(msg, g),
        )

    def _on_validated(self, cohort: Any, generation: int) -> None:
        if generation == self._generation:  # a newer check supersedes this one
            self._on_cohort(cohort)

    def _on_validation_failed(self, message: str, generation: int) -> None:
        if generation == self._generation:
            self.failed.emit("The cohort could not be checked", message)

    def _on_cohort(self, cohort: Any) -> None:
        self.cohort = cohort
        self.cohort_changed.emit(cohort)

    def update_cohort(self, cohort: Any) -> None:
        """After image decoding found more problems (prepare_images returns an updated cohort)."""
        self._on_cohort(cohort)
