"""Where a cohort is and how to read it: one type for training, prediction and the app.

A `CohortSource` names the table (and XLSX sheet), the images root, the columns that
hold the patient id, the image path and the clinical values (None: guessed from the
header, as `bpd cohort check` guesses), the image pattern for one-row-per-patient tables,
and the outcome column with its positive and negative values.

Its JSON is config.json's "cohort_source" (docs/run-folder.md), unchanged from the
first release: {"table", "images_root", "mapping": a ColumnMapping or null,
"image_pattern", "sheet", "outcome": {"column", "positive", "negative", "negative_rest"}},
plus "crops" (the crop-box sidecar's path) when the cohort has one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.cohort.mapping import ColumnMapping, OutcomeMapping, recorded_negative_rest
from core.errors import InputError

if TYPE_CHECKING:
    from core.cohort.crops import CropTable

CLINICAL_ROLES = ("gestational_age", "birth_weight", "irds", "sex")


@dataclass(frozen=True)
class OutcomeSpec:
    """The outcome column and which of its values are positive / negative. A run needs
    both (RunConfig checks); `bpd cohort check` may leave the column to the header
    guess ("") and the positive values open (it then lists the values it found)."""

    column: str
    positive: tuple[str, ...]
    negative: tuple[str, ...] = ()
    negative_rest: bool = False  # every recorded value not named positive is negative

    def __post_init__(self) -> None:
        object.__setattr__(self, "column", str(self.column or ""))
        object.__setattr__(self, "positive", tuple(str(v) for v in self.positive))
        object.__setattr__(self, "negative", tuple(str(v) for v in self.negative))

    def require_complete(self, file: str | Path | None = None) -> None:
        """What training and metrics need: a named column and its positive values."""
        if not self.column:
            raise InputError("no outcome column named (--outcome)", file=file)
        if not self.positive:
            raise InputError(
                f"name the positive values of outcome column '{self.column}' (--positive ...)",
                file=file,
            )

    def mapping(self) -> OutcomeMapping:
        return OutcomeMapping(self.positive, self.negative, self.negative_rest)

    def to_json(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "positive": list(self.positive),
            "negative": list(self.negative),
            "negative_rest": self.negative_rest,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OutcomeSpec:
        return cls(
            column=str(data["column"]),
            positive=tuple(data.get("positive") or ()),
            negative=tuple(data.get("negative") or ()),
            negative_rest=recorded_negative_rest(dict(data)),
        )


@dataclass(frozen=True)
class CohortSource:
    table: str
    outcome: OutcomeSpec | None = None  # None only where labels are optional (prediction)
    images_root: str | None = None  # None: the table's folder
    patient_column: str | None = None  # None: guessed from the header
    image_column: str | None = None  # None: guessed; no image column with a pattern
    image_pattern: str | None = None  # one row per patient, e.g. "{patient_id}_*.png"
    clinical_columns: Mapping[str, str] | None = None  # role -> column; None: guessed
    sheet: str | int | None = None  # XLSX sheet (name, or position from 1)
    crops: str | None = None  # crop-box sidecar (core.cohort.crops); None: whole images

    def __post_init__(self) -> None:
        if self.clinical_columns is not None:
            unknown = set(self.clinical_columns) - set(CLINICAL_ROLES)
            if unknown:
                raise InputError(f"unknown clinical column role(s): {', '.join(sorted(unknown))}")
            object.__setattr__(self, "clinical_columns", dict(self.clinical_columns))

    def replace(self, **changes: Any) -> CohortSource:
        return dataclasses.replace(self, **changes)

    @property
    def names_columns(self) -> bool:
        """True when some column is named rather than left to the header guess."""
        return any(
            v is not None for v in (self.patient_column, self.image_column, self.clinical_columns)
        )

    @property
    def is_complete(self) -> bool:
        """Patient and clinical columns named: nothing is left to guess (the image
        column may be None: images found by the pattern)."""
        return self.patient_column is not None and self.clinical_columns is not None

    def resolved(self, header: list[str]) -> CohortSource:
        """Every column named: those not chosen guessed from `header` as `bpd cohort
        check` guesses them (a pattern means no image column), so a run records exactly
        which columns it read."""
        from core.cohort.mapping import guess_mapping

        guessed = guess_mapping(header)
        image = self.image_column or (None if self.image_pattern else guessed.image)
        clinical = self.clinical_columns
        if clinical is None:
            clinical = guessed.clinical_columns()
        return self.replace(
            patient_column=self.patient_column or guessed.patient_id or None,
            image_column=image,
            clinical_columns=clinical,
        )

    def column_mapping(self) -> ColumnMapping | None:
        """The ColumnMapping the loader reads with (None: all guessed by the loader)."""
        if not self.names_columns:
            return None
        clinical = self.clinical_columns or {}
        return ColumnMapping(
            patient_id=self.patient_column or "",
            image=self.image_column,
            outcome=self.outcome.column if self.outcome else "",
            **{role: clinical.get(role) for role in CLINICAL_ROLES},
        )

    @classmethod
    def from_mapping(
        cls,
        table: str | Path,
        mapping: ColumnMapping,
        outcome: OutcomeMapping,
        *,
        images_root: str | None = None,
        image_pattern: str | None = None,
        sheet: str | int | None = None,
    ) -> CohortSource:
        """From a complete column mapping and outcome mapping (the app's mapping dialog)."""
        return cls(
            table=str(table),
            outcome=OutcomeSpec(
                mapping.outcome, outcome.positive, outcome.negative, outcome.negative_rest
            ),
            images_root=images_root,
            patient_column=mapping.patient_id or None,
            image_column=mapping.image,
            image_pattern=image_pattern,
            clinical_columns=mapping.clinical_columns(),
            sheet=sheet,
        )

    def crop_table(self) -> CropTable:
        """The sidecar's boxes, suggestions included (InputError naming file and row for
        a bad one); empty without a sidecar."""
        from core.cohort.crops import CropTable, read_sidecar

        return read_sidecar(self.crops) if self.crops else CropTable()

    def to_json(self) -> dict[str, Any]:
        mapping = self.column_mapping()
        crops = {"crops": self.crops} if self.crops else {}  # absent: as before crops existed
        return {
            **crops,
            "table": self.table,
            "images_root": self.images_root,
            "mapping": mapping.to_json() if mapping is not None else None,
            "image_pattern": self.image_pattern,
            "sheet": self.sheet,
            "outcome": self.outcome.to_json() if self.outcome else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CohortSource:
        """Also reads what earlier versions wrote (no "sheet", no "negative_rest")."""
        if not isinstance(data, Mapping) or not data.get("table"):
            raise InputError("cohort source: expected an object with a 'table'")
        mapping = data.get("mapping") or None
        outcome = data.get("outcome")
        columns: dict[str, Any] = {}
        if mapping is not None:
            columns = {
                "patient_column": mapping.get("patient_id") or None,
                "image_column": mapping.get("image") or None,
                "clinical_columns": {r: mapping[r] for r in CLINICAL_ROLES if mapping.get(r)},
            }
        try:
            return cls(
                table=str(data["table"]),
                outcome=OutcomeSpec.from_json(outcome) if outcome else None,
                images_root=data.get("images_root") or None,
                image_pattern=data.get("image_pattern") or None,
                sheet=data.get("sheet"),
                crops=data.get("crops") or None,
                **columns,
            )
        except (KeyError, TypeError) as exc:
            raise InputError(f"cohort source: missing or malformed {exc}") from None
