"""The validated cohort: one record per patient, their images, and every exclusion.

Nothing is dropped silently: a patient or image that cannot be used is kept in
`Cohort.exclusions` / `Cohort.problems` with the row, the file and the reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ClinicalValues:
    gestational_age_weeks: float | None = None  # 27+3 -> 27.43
    birth_weight_g: float | None = None
    irds_grade: int | None = None  # 0-4 (I-IV -> 1-4)
    sex: str | None = None  # "F" / "M" / None


@dataclass(frozen=True)
class ImageRecord:
    path: Path  # absolute path on this machine
    row: int  # 1-based data row in the table (header excluded) that named it
    sha256: str | None = None  # content hash, filled once the image was read


@dataclass(frozen=True)
class Patient:
    patient_id: str
    label: int  # 1 = positive outcome (e.g. moderate/severe BPD), 0 = negative
    outcome_raw: str  # the value as written in the table
    images: tuple[ImageRecord, ...]
    clinical: ClinicalValues = field(default_factory=ClinicalValues)
    row: int = 0  # first table row of this patient


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input. `severity` is "error" (something excluded)
    or "warning" (kept, but worth a look)."""

    reason: str  # short machine-readable key, e.g. "missing_file"
    message: str  # readable sentence naming what to fix
    severity: str = "error"
    row: int | None = None
    file: str | None = None
    patient_id: str | None = None


@dataclass(frozen=True)
class Exclusion:
    """A patient left out of the analysis, and why."""

    patient_id: str
    reason: str
    message: str
    row: int | None = None


@dataclass
class Cohort:
    table_path: Path
    images_root: Path
    patients: list[Patient]
    exclusions: list[Exclusion] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    outcome_column: str = ""
    positive_values: tuple[str, ...] = ()
    negative_values: tuple[str, ...] = ()
    negative_rest: bool = False  # every recorded value not named positive counted negative
    sheet: str | None = None  # the XLSX sheet read (None: a CSV table)
    # patients with several images, counted by how their first (scored) image was chosen:
    # DICOM tags (core.cohort.acquisition) or "table order"; filled by prepare_images
    first_image_by: dict[str, int] = field(default_factory=dict)

    @property
    def n_patients(self) -> int:
        return len(self.patients)

    @property
    def n_images(self) -> int:
        return sum(len(p.images) for p in self.patients)

    @property
    def n_positive(self) -> int:
        return sum(p.label for p in self.patients)

    @property
    def n_negative(self) -> int:
        return self.n_patients - self.n_positive

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def is_usable(self, min_per_class: int = 2) -> bool:
        """Enough patients of both outcomes to train and cross-validate."""
        return self.n_positive >= min_per_class and self.n_negative >= min_per_class

    def summary(self) -> dict[str, Any]:
        """Counts only: no identifying values, safe to write into run folders."""
        reasons: dict[str, int] = {}
        for ex in self.exclusions:
            reasons[ex.reason] = reasons.get(ex.reason, 0) + 1
        return {
            "table": self.table_path.name,
            "sheet": self.sheet,
            "n_patients": self.n_patients,
            "n_images": self.n_images,
            "n_positive": self.n_positive,
            "n_negative": self.n_negative,
            "n_excluded": len(self.exclusions),
            "excluded_by_reason": reasons,
            "n_errors": len(self.errors),
            "n_warnings": len(self.warnings),
            "outcome_column": self.outcome_column,
            "positive_values": list(self.positive_values),
            "negative_values": list(self.negative_values),
            "negative_rest": self.negative_rest,
            "first_image_by": dict(self.first_image_by),
        }

    def to_json(self) -> dict[str, Any]:
        def enc(obj: Any) -> Any:
            d = asdict(obj)
            return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}

        return {
            "summary": self.summary(),
            "exclusions": [enc(e) for e in self.exclusions],
            "problems": [enc(p) for p in self.problems],
        }
