"""Out-of-fold explanation: each infant explained by the fold model that did not train
on them, so the review shows what the cross-validation evaluated.

For repeat R, the patient's fold is the one of that repeat whose record lists the
patient among its test_patients. The image is the one the fold scored: the patient's
first readable image in table order (with test_images "mean" the fold averaged all
images; the map is still of the first). Fold models are cached per fold, so explaining
every patient loads each fold's model once.

Probabilities and maps are fp32, as the cross-validation scored its test patients
(core.training.loop), so the probability shown equals the recorded out-of-fold one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.errors import ImageError, InputError
from core.runs.folder import RunFolder


@dataclass
class RunExplainer:
    """One run's folds, cohort and preprocessing, with fold models loaded on demand."""

    run_dir: Path
    config: dict[str, Any]
    folds: dict[str, dict[str, Any]]  # fold_id -> its record (docs/run-folder.md)
    models: dict[str, torch.nn.Module] = field(default_factory=dict)
    max_models: int = 2
    _images: dict[str, list[Path]] | None = None
    _predictions: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)

    @classmethod
    def open(cls, run_dir: str | Path) -> RunExplainer:
        run = RunFolder.existing(run_dir)  # reads only: safe while the run still trains
        folds = {f.fold_id: f.info for f in run.finished_folds()}
        if not folds:
            raise InputError("the run has no finished fold", file=run.path)
        return cls(run.path, run.config(), folds)

    @property
    def run(self) -> RunFolder:
        return RunFolder(self.run_dir)

    def fold_of(self, patient_id: str, repeat: int = 0) -> str:
        for fold_id, info in self.folds.items():
            if int(info.get("repeat", -1)) == repeat and patient_id in info["test_patients"]:
                return fold_id
        raise InputError(
            f"patient {patient_id!r} is in no finished test fold of repeat {repeat}",
            file=self.run_dir,
        )

    def model(self, fold_id: str) -> torch.nn.Module:
        if fold_id not in self.models:
            # A ResNet-50 is ~95 MB: keep a few (30 folds of the paper's CV would be 3 GB);
            # `bpd explain --all` goes fold by fold, so each is still loaded once.
            while len(self.models) >= self.max_models:
                self.models.pop(next(iter(self.models)))
            self.models[fold_id] = self.run.fold_model(fold_id, self.config)
        return self.models[fold_id]

    def patient_images(self, patient_id: str) -> list[Path]:
        if self._images is None:
            self._images = _cohort_images(self.config)
        if patient_id not in self._images:
            raise InputError(f"patient {patient_id!r} is not in the run's cohort table")
        return self._images[patient_id]

    def fold_prob(self, fold_id: str, patient_id: str) -> float | None:
        """The probability the fold recorded for the patient (its test predictions)."""
        row = self._fold_rows(fold_id).get(patient_id)
        return float(row["prob"]) if row else None

    def label(self, fold_id: str, patient_id: str) -> int | None:
        row = self._fold_rows(fold_id).get(patient_id)
        return int(row["label"]) if row else None

    def _fold_rows(self, fold_id: str) -> dict[str, dict[str, str]]:
        """A fold's test predictions by patient, read once (`--all` asks per patient)."""
        if fold_id not in self._predictions:
            rows = self.run.fold(fold_id).read_predictions()
            self._predictions[fold_id] = {r["patient_id"]: r for r in rows}
        return self._predictions[fold_id]


def _cohort_images(config: dict[str, Any]) -> dict[str, list[Path]]:
    """Each patient's image paths, from the run's cohort table (no decoding)."""
    from core.cohort.loader import load_recorded_cohort

    cohort = load_recorded_cohort(config["cohort_source"])
    return {p.patient_id: [rec.path for rec in p.images] for p in cohort.patients}


def _first_readable(paths: list[Path], cfg, crops=None) -> tuple[Path, np.ndarray, Any]:
    """(path, model input, its crop box or None) of the patient's first usable image."""
    from core.cohort.crops import crop_for_file
    from core.cohort.images import read_image
    from core.cohort.preprocess import preprocess

    last: ImageError | None = None
    for path in paths:
        try:
            crop = crop_for_file(path, crops)
            return path, preprocess(read_image(path).pixels, cfg, crop), crop
        except ImageError as exc:  # training skipped it too; the next one was scored
            last = exc
    raise last or InputError("the patient has no image")


@dataclass
class Explanation:
    """One patient's out-of-fold map: `cam` [R, R] scaled to its own maximum, `peak` that
    maximum (0.0: an all-zero map), the image it explains and the model input."""

    patient_id: str
    fold_id: str
    image: Path
    cam: np.ndarray
    peak: float
    gray: np.ndarray  # uint16 [R, R], what the model saw
    prob: float
    crop: Any = None  # core.cohort.crops.Crop the image was cut to (None: whole image)


def explain_oof(
    run_dir: str | Path | RunExplainer, patient_id: str, *, repeat: int = 0
) -> Explanation:
    """The patient's Grad-CAM from the fold model of `repeat` whose test set held them.
    Pass a RunExplainer to reuse loaded fold models across patients."""
    from core.cohort.preprocess import to_model_input
    from core.explain.gradcam import explain_with_peak

    ex = run_dir if isinstance(run_dir, RunExplainer) else RunExplainer.open(run_dir)
    fold_id = ex.fold_of(str(patient_id), repeat)
    path, gray, crop = _first_readable(
        ex.patient_images(str(patient_id)), ex.run.preprocess(ex.config), ex.run.crops(ex.config)
    )
    model = ex.model(fold_id)
    x = to_model_input(gray)[None, None]
    with torch.no_grad():
        prob = float(torch.sigmoid(model(x).float())[0])
    cam, peak = explain_with_peak(model, x, precision="float32")
    return Explanation(str(patient_id), fold_id, path, cam, peak, gray, prob, crop)


def explain_patient(
    run_dir: str | Path | RunExplainer, patient_id: str, *, repeat: int = 0
) -> tuple[np.ndarray, np.ndarray, float, str]:
    """(cam float32 [R, R] in [0, 1], gray uint16 [R, R], prob, fold_id): explain_oof's
    essentials as a tuple."""
    e = explain_oof(run_dir, patient_id, repeat=repeat)
    return e.cam, e.gray, e.prob, e.fold_id
