"""Table -> validated `Cohort` (no image decoding; see prepare.py for that).

Row numbers in every Problem/Exclusion are 1-based *data rows*: 1 is the first row
under the header (spreadsheet line 2). Nothing is dropped silently: every row, image
or patient left out is recorded with its reason.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from core.cohort.clinical import (
    parse_birth_weight,
    parse_gestational_age,
    parse_irds,
    parse_sex,
)
from core.cohort.imagepaths import (
    PatternMatcher,
    is_inside,
    is_lexically_inside,
    normalize_root,
    resolve_reference,
)
from core.cohort.mapping import (
    ColumnMapping,
    OutcomeMapping,
    guess_mapping,
    is_not_recorded,
    normalize_value,
    outcome_value_counts,
)
from core.cohort.model import ClinicalValues, Cohort, Exclusion, ImageRecord, Patient, Problem
from core.cohort.outcome_values import (
    NEGATIVE_REST_HINT,
    listed_values,
    require_named_values_occur,
)
from core.cohort.source import CohortSource, OutcomeSpec
from core.cohort.table import read_table
from core.errors import InputError

log = logging.getLogger(__name__)
PARSERS = {
    "gestational_age": (parse_gestational_age, "gestational_age_weeks"),
    "birth_weight": (parse_birth_weight, "birth_weight_g"),
    "irds": (parse_irds, "irds_grade"),
    "sex": (parse_sex, "sex"),
}


def load_cohort(
    table: str | Path | pd.DataFrame,
    *,
    images_root: str | Path | None = None,
    mapping: ColumnMapping | None = None,
    outcome: OutcomeMapping | None = None,
    outcome_column: str | None = None,
    positive: Sequence[str] | None = None,
    negative: Sequence[str] | None = None,
    image_pattern: str | None = None,
    negative_rest: bool = False,
    sheet: str | int | None = None,
) -> Cohort:
    """Read and validate a cohort table. Image paths are relative to `images_root`
    (default: the table's folder). Without an image column, each patient's images are
    found by `image_pattern` (e.g. ``{patient_id}_*.png`` or ``{patient_id}/*``).
    A value named in `positive`/`negative` that the outcome column lacks is an
    InputError; a recorded value named in neither excludes its patient unless
    `negative_rest`. `sheet`: the XLSX sheet (name or position from 1)."""
    if isinstance(table, pd.DataFrame):
        if images_root is None:
            raise InputError("images_root is required when the table is given as a DataFrame")
        df, table_path = table, Path("<table>")
    else:
        table_path = Path(table)
        df = read_table(table_path, sheet)
    root = normalize_root(images_root if images_root is not None else table_path.parent)
    if not root.is_dir():
        raise InputError("images root is not a folder", file=root)

    if mapping is None:
        mapping = guess_mapping(df.columns)
        if image_pattern:  # a pattern means one row per patient, whatever the header says
            mapping = dataclasses.replace(mapping, image=None)
    elif image_pattern and mapping.image:
        raise InputError(
            f"give either an image column ('{mapping.image}') or an image pattern, not both",
            file=table_path,
        )
    mapping = _checked_mapping(df, mapping, outcome_column, table_path)
    duplicates = _duplicate_header_problems(df, mapping, table_path)
    counts = outcome_value_counts(df, mapping.outcome)
    if outcome is None:
        if not positive:
            raise InputError(
                f"name the positive outcome values (e.g. --positive ...); "
                f"values in column '{mapping.outcome}': {listed_values(counts)}",
                file=table_path,
            )
        outcome = OutcomeMapping(tuple(positive), tuple(negative or ()), negative_rest)
    require_named_values_occur(counts, outcome, mapping.outcome, table_path)
    builder = _Builder(df, table_path, root, mapping, outcome, image_pattern)
    builder.problems.extend(duplicates)
    cohort = builder.build()
    cohort.sheet = df.attrs.get("sheet")
    return cohort


def _duplicate_header_problems(df, mapping: ColumnMapping, table_path: Path) -> list[Problem]:
    """A header written twice: an error when a chosen column is one of them (which one
    holds the outcome?), else a warning naming both columns (only the first is read)."""
    used = {c for c in (mapping.patient_id, mapping.outcome, mapping.image) if c}
    used.update(mapping.clinical_columns().values())
    problems = []
    for name, columns in (df.attrs.get("duplicate_headers") or {}).items():
        where = " and ".join(columns)
        copies = {name, *(f"{name} [{c}]" for c in columns)}
        if copies & used:
            raise InputError(
                f"{where} both have the header '{name}', and '{name}' is a column this "
                "cohort uses; rename one of them so it is clear which to read",
                file=table_path,
            )
        problems.append(
            Problem(
                "duplicate_header",
                f"{where} both have the header '{name}'; the first is '{name}', the "
                f"others are named '{name} [column ...]' (rename one if it matters)",
                severity="warning",
                file=str(table_path),
            )
        )
    return problems


def _checked_mapping(
    df: pd.DataFrame, mapping: ColumnMapping, outcome_column: str | None, table_path: Path
) -> ColumnMapping:
    if outcome_column:
        mapping = dataclasses.replace(mapping, outcome=outcome_column)
    columns = ", ".join(df.columns)
    if not mapping.patient_id:
        raise InputError(f"no patient id column found; columns: {columns}", file=table_path)
    if not mapping.outcome:
        raise InputError(f"no outcome column chosen; columns: {columns}", file=table_path)
    named = {"patient id": mapping.patient_id, "outcome": mapping.outcome, "image": mapping.image}
    named.update(mapping.clinical_columns())
    for role, col in named.items():
        if col and col not in df.columns:
            raise InputError(
                f"{role} column '{col}' not in the table; columns: {columns}", file=table_path
            )
    return mapping


class _Builder:
    def __init__(self, df, table_path, root, mapping, outcome, image_pattern):
        self.df, self.table_path, self.root = df, table_path, root
        self.mapping, self.outcome = mapping, outcome
        self.matcher = PatternMatcher(root, image_pattern) if mapping.image is None else None
        self.pattern = image_pattern
        self.problems: list[Problem] = []
        self.exclusions: list[Exclusion] = []
        self.seen_paths: dict[Path, tuple[int, str]] = {}  # -> (data row, patient)

    def problem(self, reason, message, row=None, file=None, pid=None, severity="error"):
        self.problems.append(Problem(reason, message, severity, row, file, pid))

    def build(self) -> Cohort:
        rows_by_patient: dict[str, list[tuple[int, dict[str, str]]]] = {}
        columns = list(self.df.columns)  # plain dicts: far faster than iterrows
        records = (dict(zip(columns, v, strict=True)) for v in self.df.itertuples(False, None))
        for row, record in zip(self.df.index, records, strict=True):
            pid = record[self.mapping.patient_id]
            if not pid:
                self.problem(
                    "missing_patient_id",
                    f"data row {row}: no patient id; the row is not used",
                    row=int(row),
                )
                continue
            rows_by_patient.setdefault(pid, []).append((int(row), record))
        # Outcomes first: an excluded patient's rows must not claim an image that a kept
        # patient names too (a conflicting row reusing another infant's radiograph).
        labelled = [(pid, rows, self._outcome(pid, rows)) for pid, rows in rows_by_patient.items()]
        patients = [
            p for pid, rows, (label, raw) in labelled if (p := self._patient(pid, rows, label, raw))
        ]
        self._note_images_of_excluded(labelled)
        return Cohort(
            table_path=self.table_path,
            images_root=self.root,
            patients=patients,
            exclusions=self.exclusions,
            problems=self.problems,
            outcome_column=self.mapping.outcome,
            positive_values=self.outcome.positive,
            negative_values=self._negatives(),
            negative_rest=self.outcome.negative_rest,
        )

    def _negatives(self) -> tuple[str, ...]:
        """The named negatives, plus with negative_rest every other recorded value."""
        if not self.outcome.negative_rest:
            return self.outcome.negative
        named = {normalize_value(v) for v in self.outcome.negative}
        values = outcome_value_counts(self.df, self.mapping.outcome)
        rest = [v for v in values if self.outcome.classify(v) == 0]
        return self.outcome.negative + tuple(v for v in rest if normalize_value(v) not in named)

    def _note_images_of_excluded(self, labelled) -> None:
        """Say when an excluded patient's row names an image a kept patient uses."""
        if self.matcher is not None:
            return
        for pid, rows, (label, _) in labelled:
            if label is not None:
                continue
            for row, record in rows:
                cell = record[self.mapping.image]
                path = resolve_reference(cell, self.root) if cell else None
                if path is not None and path in self.seen_paths:
                    self.problem(
                        "duplicate_image",
                        f"data row {row} (patient {pid}, excluded) names image '{cell}', "
                        f"which data row {self.seen_paths[path][0]} gives to patient "
                        f"{self.seen_paths[path][1]}; "
                        "check which patient the radiograph belongs to",
                        row,
                        str(path),
                        pid,
                        severity="warning",
                    )

    def _patient(self, pid: str, rows, label: int | None, raw: str) -> Patient | None:
        first_row = rows[0][0]
        clinical = self._clinical(pid, rows)
        if label is None:
            return None
        images = self._images(pid, rows)
        if not images:
            self.exclusions.append(
                Exclusion(pid, "no_images", self._no_image_message(pid, rows), first_row)
            )
            return None
        return Patient(pid, label, raw, tuple(images), clinical, first_row)

    def _outcome(self, pid: str, rows) -> tuple[int | None, str]:
        col, first_row = self.mapping.outcome, rows[0][0]
        values = [r[col] for _, r in rows if not is_not_recorded(r[col])]
        if not values:
            written = next((r[col] for _, r in rows if r[col]), "")
            reason = "outcome_not_recorded" if written else "missing_outcome"
            what = f"'{written}'" if written else "empty"
            self.exclusions.append(
                Exclusion(pid, reason, f"outcome in '{col}' is {what}: patient excluded", first_row)
            )
            return None, ""
        labels = {self.outcome.classify(v) for v in values}
        if len(labels) > 1:
            each = ", ".join(
                f"{r} ('{rec[col]}')" for r, rec in rows if not is_not_recorded(rec[col])
            )
            self.exclusions.append(
                Exclusion(
                    pid,
                    "conflicting_outcomes",
                    f"data rows {each} give different outcomes: patient excluded",
                    first_row,
                )
            )
            return None, ""
        label = labels.pop()
        if label is None:
            negatives = ", ".join(self.outcome.negative) or "none named"
            self.exclusions.append(
                Exclusion(
                    pid,
                    "unknown_outcome",
                    f"outcome '{values[0]}' is neither a positive "
                    f"({', '.join(self.outcome.positive)}) nor a negative ({negatives}) value: "
                    f"patient excluded; to use it, {NEGATIVE_REST_HINT}",
                    first_row,
                )
            )
            return None, ""
        return label, values[0]

    def _clinical(self, pid: str, rows) -> ClinicalValues:
        found: dict[str, object] = {}
        for role, col in self.mapping.clinical_columns().items():
            parse, field = PARSERS[role]
            parsed: dict[object, int] = {}
            for row, record in rows:
                text = record[col]
                if is_not_recorded(text):
                    continue
                try:
                    parsed.setdefault(parse(text), row)
                except ValueError as exc:
                    self.problem(
                        "bad_clinical_value",
                        f"data row {row}, column '{col}': {exc}; value not used",
                        row=row,
                        pid=pid,
                        severity="warning",
                    )
            if len(parsed) > 1:
                self.problem(
                    "conflicting_clinical_value",
                    f"column '{col}' differs between rows {sorted(parsed.values())}; "
                    "the first is used",
                    row=rows[0][0],
                    pid=pid,
                    severity="warning",
                )
            if parsed:
                found[field] = next(iter(parsed))
        return ClinicalValues(**found)

    def _images(self, pid: str, rows) -> list[ImageRecord]:
        if self.matcher is not None:
            refs = [(rows[0][0], str(p), p) for p in self.matcher.find(pid)]
        else:
            refs = []
            for row, record in rows:
                cell = record[self.mapping.image]
                if not cell:
                    self.problem(
                        "missing_image_path",
                        f"data row {row}: no image in column '{self.mapping.image}'",
                        row=row,
                        pid=pid,
                    )
                    continue
                refs.append((row, cell, resolve_reference(cell, self.root)))
        return [rec for ref in refs if (rec := self._checked_image(pid, *ref))]

    def _checked_image(self, pid: str, row: int, cell: str, path: Path) -> ImageRecord | None:
        if not is_inside(path, self.root):
            how = (  # a link inside the root that leads out (file or folder link)
                "is a symbolic link (or in a linked folder) that points outside"
                if is_lexically_inside(path, self.root)
                else "is outside"
            )
            self.problem(
                "outside_images_root",
                f"data row {row}: image '{cell}' {how} the images root {self.root}; "
                "copy the file into it or pass --images-root",
                row=row,
                file=str(path),
                pid=pid,
            )
            return None
        if not path.is_file():
            what = "is a folder, not an image file" if path.is_dir() else "not found"
            self.problem(
                "missing_file", f"data row {row}: image '{cell}' {what}", row, str(path), pid
            )
            return None
        if path in self.seen_paths:
            first_row, first_pid = self.seen_paths[path]
            whose = "the same patient" if first_pid == pid else f"patient {first_pid}"
            self.problem(
                "duplicate_image",
                f"data row {row}: image '{cell}' already listed in data row {first_row} "
                f"({whose}); the repeat is not used",
                row,
                str(path),
                pid,
            )
            return None
        self.seen_paths[path] = (row, pid)
        return ImageRecord(path, row)

    def _no_image_message(self, pid: str, rows) -> str:
        if self.matcher is not None:
            pattern = self.pattern or " or ".join(self.matcher.default_pattern(pid))
            return f"no image file matches {pattern} under {self.root}: patient excluded"
        return "none of the patient's images can be used (see problems): patient excluded"


def load_source(source: CohortSource) -> Cohort:
    """Read and validate the cohort a CohortSource names (no image decoding). Columns
    it leaves open are guessed from the header, as `bpd cohort check` does."""
    header: list[str] | None = None
    if source.names_columns and not source.is_complete:
        header = list(read_table(Path(source.table), source.sheet).columns)
        source = source.resolved(header)
    mapping = source.column_mapping()
    outcome = source.outcome or OutcomeSpec("", ())
    if mapping is not None and not mapping.outcome:  # the outcome column left to the guess
        header = header or list(read_table(Path(source.table), source.sheet).columns)
        mapping = dataclasses.replace(mapping, outcome=guess_mapping(header).outcome)
    return load_cohort(
        source.table,
        images_root=source.images_root,
        mapping=mapping,
        image_pattern=source.image_pattern,
        outcome_column=outcome.column or None,
        positive=outcome.positive or None,  # none named: the error lists the values found
        negative=outcome.negative or None,
        negative_rest=outcome.negative_rest,
        sheet=source.sheet,
    )


def load_recorded_cohort(source: dict[str, Any]) -> Cohort:
    """The cohort a run recorded in config.json["cohort_source"], re-read without
    decoding images. Resume, explain and report all go through here, so they see the
    run's own mapping."""
    return load_source(CohortSource.from_json(source))
