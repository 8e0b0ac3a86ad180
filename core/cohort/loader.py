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
from core.cohort.imagepaths import PatternMatcher, is_inside, normalize_root, resolve_reference
from core.cohort.mapping import (
    ColumnMapping,
    OutcomeMapping,
    guess_mapping,
    is_not_recorded,
    normalize_value,
    outcome_value_counts,
)
from core.cohort.model import ClinicalValues, Cohort, Exclusion, ImageRecord, Patient, Problem
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
) -> Cohort:
    """Read and validate a cohort table. Image paths are relative to `images_root`
    (default: the table's folder). Without an image column, each patient's images are
    found by `image_pattern` (e.g. ``{patient_id}_*.png`` or ``{patient_id}/*``)."""
    if isinstance(table, pd.DataFrame):
        if images_root is None:
            raise InputError("images_root is required when the table is given as a DataFrame")
        df, table_path = table, Path("<table>")
    else:
        table_path = Path(table)
        df = read_table(table_path)
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
    if outcome is None:
        if not positive:
            counts = outcome_value_counts(df, mapping.outcome)
            listed = ", ".join(f"{v or '(empty)'} ({n})" for v, n in counts.items())
            raise InputError(
                f"name the positive outcome values (e.g. --positive ...); "
                f"values in column '{mapping.outcome}': {listed}",
                file=table_path,
            )
        outcome = OutcomeMapping(tuple(positive), tuple(negative or ()))
    builder = _Builder(df, table_path, root, mapping, outcome, image_pattern)
    return builder.build()


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
        self.seen_paths: dict[Path, int] = {}

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
        self._check_outcome_values_used()
        patients = [p for pid, rows in rows_by_patient.items() if (p := self._patient(pid, rows))]
        return Cohort(
            table_path=self.table_path,
            images_root=self.root,
            patients=patients,
            exclusions=self.exclusions,
            problems=self.problems,
            outcome_column=self.mapping.outcome,
            positive_values=self.outcome.positive,
            negative_values=self.outcome.negative or self._implicit_negatives(),
        )

    def _implicit_negatives(self) -> tuple[str, ...]:
        values = outcome_value_counts(self.df, self.mapping.outcome)
        return tuple(v for v in values if self.outcome.classify(v) == 0)

    def _check_outcome_values_used(self) -> None:
        present = {normalize_value(v) for v in self.df[self.mapping.outcome]}
        for value in (*self.outcome.positive, *self.outcome.negative):
            if normalize_value(value) not in present:
                self.problem(
                    "outcome_value_not_found",
                    f"outcome value '{value}' does not occur in column '{self.mapping.outcome}'",
                    severity="warning",
                )

    def _patient(self, pid: str, rows: list[tuple[int, dict[str, str]]]) -> Patient | None:
        first_row = rows[0][0]
        label, raw = self._outcome(pid, rows)
        clinical = self._clinical(pid, rows)
        images = self._images(pid, rows)
        if label is None:
            return None
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
        distinct = sorted(set(values))
        if len(labels) > 1:
            self.exclusions.append(
                Exclusion(
                    pid,
                    "conflicting_outcomes",
                    f"rows {', '.join(str(r) for r, _ in rows)} give different outcomes "
                    f"({', '.join(distinct)}): patient excluded",
                    first_row,
                )
            )
            return None, ""
        label = labels.pop()
        if label is None:
            self.exclusions.append(
                Exclusion(
                    pid,
                    "unknown_outcome",
                    f"outcome '{values[0]}' is neither a positive "
                    f"({', '.join(self.outcome.positive)}) nor a negative value: patient excluded",
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
            self.problem(
                "outside_images_root",
                f"data row {row}: image '{cell}' is outside the images root {self.root}; "
                "move it there or pass --images-root",
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
            self.problem(
                "duplicate_image",
                f"data row {row}: image '{cell}' already listed in data row "
                f"{self.seen_paths[path]}; the repeat is not used",
                row,
                str(path),
                pid,
            )
            return None
        self.seen_paths[path] = row
        return ImageRecord(path, row)

    def _no_image_message(self, pid: str, rows) -> str:
        if self.matcher is not None:
            pattern = self.pattern or " or ".join(self.matcher.default_pattern(pid))
            return f"no image file matches {pattern} under {self.root}: patient excluded"
        return "none of the patient's images can be used (see problems): patient excluded"


def load_recorded_cohort(source: dict[str, Any]) -> Cohort:
    """The cohort a run recorded in config.json["cohort_source"] (table, images root,
    column mapping, image pattern, outcome mapping), re-read without decoding images.
    Resume, explain and report all go through here, so they see the run's own mapping."""
    outcome = source["outcome"]
    mapping = source.get("mapping")
    return load_cohort(
        source["table"],
        images_root=source.get("images_root"),
        mapping=ColumnMapping.from_json(mapping) if mapping else None,
        image_pattern=source.get("image_pattern"),
        outcome_column=outcome["column"],
        positive=outcome["positive"],
        negative=outcome.get("negative") or None,
    )
