"""What reviewing a run's infants needs, read from the run folder and its cohort table:
one row per tested infant (out-of-fold probability, true outcome, TP/FP/TN/FN at the
run's threshold, fold, clinical values, images), and an image's DICOM header without
anything that identifies a person.

Read-only; the images and clinical values come from the run's recorded cohort table
(config.json cohort_source). A run moved to another machine without its table still
opens: its rows then have no images and no clinical values, and `cohort_problem` says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import BPDError, InputError
from core.explain.overlay import outcome_class


@dataclass
class ReviewRow:
    patient_id: str
    label: int
    prob: float  # mean out-of-fold probability over the repeats that tested the infant
    outcome: str  # TP / FP / TN / FN at the run's threshold
    fold: str  # the repeat-0 fold whose model never saw the infant ("" if none)
    images: list[Path] = field(default_factory=list)
    gestational_age_weeks: float | None = None
    birth_weight_g: float | None = None
    irds_grade: int | None = None
    sex: str | None = None


@dataclass
class ReviewTable:
    run_dir: Path
    threshold: float
    rows: list[ReviewRow]
    n_repeats: int
    center_crop: float | None
    cohort_problem: str | None = None  # why images / clinical values are missing
    has_models: bool = True  # every repeat-0 fold kept its model.pt (Grad-CAM needs them)
    crops: Any = None  # core.cohort.crops.CropTable the run trained with (None: none)
    _crop_of: dict = field(default_factory=dict, repr=False)  # path -> its box, hashed once

    def crop_for(self, path: str | Path):
        """The crop box the model saw this image through (None: the whole image)."""
        from core.cohort.crops import crop_for_file

        if not self.crops:
            return None
        key = str(path)
        if key not in self._crop_of:
            self._crop_of[key] = crop_for_file(path, self.crops)
        return self._crop_of[key]

    def row(self, patient_id: str) -> ReviewRow:
        for r in self.rows:
            if r.patient_id == patient_id:
                return r
        raise KeyError(patient_id)


def review_table(run_dir: str | Path) -> ReviewTable:
    """The run's tested infants. InputError when the run has no finished fold."""
    from core.cohort.loader import load_recorded_cohort
    from core.runs.folder import RunFolder

    run = RunFolder.existing(run_dir)
    config = run.config()
    folds = run.finished_folds()
    if not folds:
        raise InputError("the run has no finished fold yet", file=run.path)
    threshold = run.threshold_for_new_patients(config)
    fold_of = {pid: f.fold_id for f in folds if f.repeat == 0 for pid in f.test_patients}
    oof = _out_of_fold(run, folds)
    patients, problem = {}, None
    try:
        cohort = load_recorded_cohort(run.cohort_source(config))
        patients = {p.patient_id: p for p in cohort.patients}
    except (BPDError, KeyError, OSError) as exc:  # moved run, table gone: still reviewable
        problem = f"the run's cohort table could not be read ({exc}); no images shown"
    rows = []
    for pid, (label, prob) in oof.items():
        p = patients.get(pid)
        clinical = p.clinical if p is not None else None
        rows.append(
            ReviewRow(
                patient_id=pid,
                label=int(label),
                prob=float(prob),
                outcome=outcome_class(int(label), float(prob), threshold),
                fold=fold_of.get(pid, ""),
                images=[rec.path for rec in p.images] if p is not None else [],
                gestational_age_weeks=clinical.gestational_age_weeks if clinical else None,
                birth_weight_g=clinical.birth_weight_g if clinical else None,
                irds_grade=clinical.irds_grade if clinical else None,
                sex=clinical.sex if clinical else None,
            )
        )
    crop = run.preprocess(config).center_crop
    n_repeats = len({f.repeat for f in folds})
    has_models = all(f.folder.has_model for f in folds if f.repeat == 0)
    return ReviewTable(run.path, threshold, rows, n_repeats, crop, problem, has_models,
                       run.crops(config))  # fmt: skip


def _out_of_fold(run, folds) -> dict[str, tuple[int, float]]:
    """patient -> (label, mean out-of-fold probability over the repeats): the run's pooled
    table, or while a run is unfinished, the finished folds' own predictions."""
    pooled = run.predictions()
    if pooled is not None:
        return {r["patient_id"]: (int(r["label"]), float(r["prob"])) for r in pooled}
    probs: dict[str, list[float]] = {}
    labels: dict[str, int] = {}
    for f in folds:
        if not f.folder.has_predictions:  # finished, but its predictions are gone
            continue
        for r in f.folder.read_predictions():
            labels[r["patient_id"]] = int(r["label"])
            probs.setdefault(r["patient_id"], []).append(float(r["prob"]))
    return {pid: (labels[pid], sum(p) / len(p)) for pid, p in probs.items()}


# DICOM attributes that describe the acquisition, never the person: an allow-list, so a
# vendor's private or unexpected tag can never leak a name, id, date or institution.
SAFE_DICOM_FIELDS = (
    ("Modality", "Modality"),
    ("BodyPartExamined", "Body part"),
    ("ViewPosition", "View"),
    ("PatientOrientation", "Orientation"),
    ("Rows", "Rows"),
    ("Columns", "Columns"),
    ("BitsStored", "Bits stored"),
    ("PhotometricInterpretation", "Photometric"),
    ("PixelSpacing", "Pixel spacing (mm)"),
    ("ImagerPixelSpacing", "Imager pixel spacing (mm)"),
    ("WindowCenter", "Window centre"),
    ("WindowWidth", "Window width"),
    ("RescaleSlope", "Rescale slope"),
    ("RescaleIntercept", "Rescale intercept"),
    ("KVP", "kVp"),
    ("Exposure", "Exposure (mAs)"),
    ("Manufacturer", "Manufacturer"),
    ("ManufacturerModelName", "Model"),
)


def dicom_details(path: str | Path) -> list[tuple[str, str]] | None:
    """(label, value) of the allow-listed header fields of a DICOM file; None when the
    file is not DICOM. Names, ids, dates, times, institutions are never read out."""
    import pydicom

    from core.cohort.images import sniff_format

    path = Path(path)
    with open(path, "rb") as fh:
        if sniff_format(fh.read(132)) != "dicom":
            return None
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception as exc:  # a damaged header: say so instead of failing the review
        return [("Header", f"unreadable ({type(exc).__name__})")]
    out = [("Transfer syntax", _transfer_syntax(ds))]
    for keyword, label in SAFE_DICOM_FIELDS:
        value = ds.get(keyword)
        if value is not None and str(value) != "":
            out.append((label, _text(value)))
    return out


def _transfer_syntax(ds) -> str:
    uid = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    return uid.name if uid is not None else "unknown"


def _text(value) -> str:
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return " \\ ".join(str(v) for v in value)
    return str(value)


def reviewable_runs(runs_dir: str | Path) -> list[Path]:
    """Finished runs under `runs_dir`, newest first (folder names start with a time stamp)."""
    from core.runs.folder import RunFolder

    runs_dir = Path(runs_dir)
    found = []
    for path in runs_dir.iterdir() if runs_dir.is_dir() else []:
        if path.is_dir() and RunFolder.looks_like_run(path):
            run = RunFolder(path)
            if run.state().get("status") == "finished" and run.summary() is not None:
                found.append(path)
    return sorted(found, key=lambda p: p.name, reverse=True)
