"""What to predict: image files given one by one, or a table of patients and images.

A prediction table needs no outcome column. It is read by the cohort loader
(core.cohort.loader) with a placeholder outcome, so ids, image columns or patterns,
paths relative to the images root, and every message about a row or file are exactly
those of `bpd cohort check` and `bpd train`. An outcome column, when given, only adds
labels for metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import InputError

if TYPE_CHECKING:  # the cohort reader (pandas) loads only when a table is read
    from core.cohort.source import CohortSource

TABLE_SUFFIXES = {".csv", ".tsv", ".txt", ".xlsx", ".xlsm"}
PLACEHOLDER_COLUMN = "__bpd_prediction__"
PLACEHOLDER_VALUE = "predict"


@dataclass(frozen=True)
class ImageInput:
    path: Path
    patient_id: str = ""  # "" for images given without a table
    row: int | None = None  # data row of the table (1 = first row under the header)
    rank: int = 0  # 0 = the patient's first image in table order


@dataclass(frozen=True)
class PatientInput:
    patient_id: str
    row: int
    label: int | None = None  # 1 positive, 0 negative, None: not given / not recorded
    outcome_raw: str = ""


@dataclass(frozen=True)
class InputProblem:
    """A table row that cannot be predicted (missing image, outside the images root, a
    patient left with no image): listed in the output instead of stopping the batch."""

    message: str
    row: int | None = None
    patient_id: str = ""
    file: str = ""
    patient_excluded: bool = False  # the patient has no usable row left


@dataclass
class PredictionInputs:
    images: list[ImageInput]
    patients: list[PatientInput]  # empty for loose images
    table: Path | None = None
    problems: list[InputProblem] = field(default_factory=list)


def is_table(path: str | Path) -> bool:
    return Path(path).suffix.lower() in TABLE_SUFFIXES


def read_inputs(
    paths: Sequence[str | Path],
    source: CohortSource | None = None,
    *,
    recorded: dict | None = None,
) -> PredictionInputs:
    """One table, or one or more image files. Missing files raise InputError naming them.
    `source`: how to read a table (images root, columns, pattern, sheet, an optional
    outcome; its table is replaced by the one in `paths`). `recorded`: the training
    run's column choices ({patient_id, image, image_pattern}), used where the user names
    none and the table has those columns."""
    if not paths:
        raise InputError("give a table or at least one image file")
    if len(paths) == 1 and is_table(paths[0]):
        from core.cohort.source import CohortSource

        table = str(paths[0])
        source = source.replace(table=table) if source else CohortSource(table)
        return read_prediction_table(source, recorded=recorded)
    tables = [p for p in paths if is_table(p)]
    if tables:
        raise InputError("give either one table or image files, not both", file=tables[0])
    images = []
    for p in paths:
        path = Path(p)
        if not path.is_file():
            what = "is a folder, not an image file" if path.is_dir() else "image file not found"
            raise InputError(what, file=path)
        images.append(ImageInput(path.resolve()))
    return PredictionInputs(images, [])


def read_prediction_table(
    source: CohortSource, *, recorded: dict | None = None
) -> PredictionInputs:
    """The patients and images of a prediction table; labels too when `source` names an
    outcome (for metrics)."""
    from core.cohort.loader import load_cohort
    from core.cohort.mapping import ColumnMapping, guess_mapping, is_not_recorded
    from core.cohort.table import read_table

    table = Path(source.table)
    df = read_table(table, source.sheet)
    spec = source.outcome
    if spec is not None:
        spec.require_complete(table)
    outcome_column = spec.column if spec else None
    patient_col, image_col = source.patient_column, source.image_column
    image_pattern = source.image_pattern
    if outcome_column and outcome_column not in df.columns:
        raise InputError(
            f"outcome column '{outcome_column}' not in the table; columns: {', '.join(df.columns)}",
            file=table,
        )
    if recorded and not (patient_col or image_col or image_pattern):
        patient_col, image_col, image_pattern = _recorded_columns(recorded, list(df.columns))
    guessed = guess_mapping(df.columns)
    image = None if image_pattern and not image_col else (image_col or guessed.image)
    mapping = ColumnMapping(
        patient_id=patient_col or guessed.patient_id,
        image=image,
        outcome=PLACEHOLDER_COLUMN,
    )
    frame = df.copy()
    frame[PLACEHOLDER_COLUMN] = PLACEHOLDER_VALUE
    root = Path(source.images_root) if source.images_root is not None else table.parent
    try:
        cohort = load_cohort(
            frame,
            images_root=root,
            mapping=mapping,
            positive=[PLACEHOLDER_VALUE],
            image_pattern=image_pattern,
        )
    except InputError as exc:
        raise InputError(exc.detail, file=exc.file if exc.file != "<table>" else table) from None
    errors = [p for p in cohort.problems if p.severity == "error"]
    table_wide = [p for p in errors if p.row is None]  # not one row's fault: stop
    if table_wide or (not cohort.patients and (errors or cohort.exclusions)):
        first = (table_wide or errors or [None])[0]
        n = len(errors) + len(cohort.exclusions)
        more = f" ({n - 1} more problem(s); `bpd cohort check` lists them all)" if n > 1 else ""
        if first is not None:
            raise InputError(first.message + more, file=first.file or table, row=first.row)
        ex = cohort.exclusions[0]
        raise InputError(f"patient {ex.patient_id}: {ex.message}{more}", file=table, row=ex.row)
    if not cohort.patients:
        raise InputError("the table lists no patient", file=table)
    # one bad row must not cost the others their prediction: list it, predict the rest
    problems = [
        InputProblem(p.message, p.row, p.patient_id or "", p.file or "") for p in errors
    ] + [InputProblem(ex.message, ex.row, ex.patient_id, "", True) for ex in cohort.exclusions]

    outcome = None
    if outcome_column:  # a misspelt value must fail, not label every patient negative
        from core.cohort.mapping import outcome_value_counts
        from core.cohort.outcome_values import require_named_values_occur

        outcome = spec.mapping()
        counts = outcome_value_counts(df, outcome_column)
        require_named_values_occur(counts, outcome, outcome_column, table)
    patients, images = [], []
    for p in cohort.patients:
        label, raw = None, ""
        if outcome is not None:
            rows = df.loc[[img.row for img in p.images] or [p.row], outcome_column]
            values = [v for v in rows if not is_not_recorded(v)]
            raw = values[0] if values else ""
            label = outcome.classify(raw) if values else None
        patients.append(PatientInput(p.patient_id, p.row, label, raw))
        for rank, rec in enumerate(p.images):
            images.append(ImageInput(rec.path, p.patient_id, rec.row, rank))
    return PredictionInputs(images, patients, table, problems)


def _recorded_columns(recorded: dict, columns: list[str]) -> tuple:
    """The training table's id/image columns where this table has them too."""
    patient = recorded.get("patient_id") if recorded.get("patient_id") in columns else None
    image = recorded.get("image") if recorded.get("image") in columns else None
    pattern = recorded.get("image_pattern") if not image and not recorded.get("image") else None
    return patient, image, pattern
