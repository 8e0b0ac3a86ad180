"""Predictions for new radiographs: the run's exact preprocessing, then the model(s).

Each image is decoded (core.cohort.images.read_image), preprocessed with the run's
PreprocessConfig and fed to the model(s) as in training (core.cohort.preprocess).
Per image: probability of the positive outcome, class at the run's threshold, model.
Per patient (tables): the run's scoring rule, its first image ("first") or the mean
over its images ("mean"), as in the cross-validation that estimated its accuracy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.cohort.images import read_image
from core.cohort.preprocess import preprocess, to_model_input
from core.predict.inputs import PredictionInputs
from core.predict.models import Predictor

log = logging.getLogger(__name__)

IMAGE_FIELDS = ("patient_id", "row", "image", "prob", "predicted_class", "threshold", "model")
PATIENT_FIELDS = ("patient_id", "row", "n_images", "prob", "predicted_class", "threshold",
                  "rule", "label", "model")  # fmt: skip
CAM_FIELDS = ("cam_png", "cam_npy")


@dataclass
class PredictionResult:
    images: list[dict[str, Any]]
    patients: list[dict[str, Any]]
    metrics: dict[str, Any] | None = None


def load_pixels(path: Path, predictor: Predictor) -> np.ndarray:
    """uint16 [R, R]: the image as the model was trained to see it (ImageError names it)."""
    return preprocess(read_image(path).pixels, predictor.preprocess)


def predict(
    predictor: Predictor,
    inputs: PredictionInputs,
    *,
    cam_dir: str | Path | None = None,
    opacity: float = 0.4,
    on_progress: Callable[[int, int], None] | None = None,
) -> PredictionResult:
    """Score every image (and patient); with `cam_dir`, also write a Grad-CAM overlay PNG
    and the raw map .npy per image (ensemble: the mean of the fold models' maps)."""
    rows: list[dict[str, Any]] = []
    n = len(inputs.images)
    for i, item in enumerate(inputs.images):
        pixels = load_pixels(item.path, predictor)
        x = to_model_input(pixels)[None, None]
        prob = float(predictor.probabilities(x)[0])
        row = {
            "patient_id": item.patient_id,
            "row": item.row if item.row is not None else "",
            "image": str(item.path),
            "prob": prob,
            "predicted_class": int(prob >= predictor.threshold),
            "threshold": predictor.threshold,
            "model": predictor.description,
        }
        if cam_dir is not None:
            row.update(_write_cam(predictor, x, pixels, Path(cam_dir), i, item, opacity))
        rows.append(row)
        if on_progress:
            on_progress(i + 1, n)
    patients = _patient_rows(predictor, inputs, rows)
    return PredictionResult(rows, patients, _metrics(patients) if patients else None)


def ensemble_cam(predictor: Predictor, x: torch.Tensor) -> np.ndarray:
    """Grad-CAM of the positive logit; for an ensemble the mean of every model's map
    (each in [0, 1]), so the map explains the averaged prediction, not one fold."""
    from core.explain.gradcam import explain

    maps = [explain(model, x) for _, model in predictor.models]
    return np.mean(maps, axis=0).astype(np.float32)


def _write_cam(predictor, x, pixels, cam_dir: Path, i: int, item, opacity) -> dict[str, str]:
    from core.explain.gradcam import overlay_png, save_cam_npy

    cam = ensemble_cam(predictor, x)
    who = f"{item.patient_id}_" if item.patient_id else ""
    stem = f"{i + 1:04d}_{_safe(who)}{_safe(item.path.stem)}"
    png = overlay_png(pixels, cam, cam_dir / f"{stem}_cam.png", opacity=opacity)
    npy = save_cam_npy(cam, cam_dir / f"{stem}_cam.npy")
    return {"cam_png": str(png), "cam_npy": str(npy)}


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)


def _patient_rows(predictor: Predictor, inputs: PredictionInputs, rows) -> list[dict]:
    if not inputs.patients:
        return []
    by_patient: dict[str, list[tuple[int, float]]] = {}
    for item, row in zip(inputs.images, rows, strict=True):
        by_patient.setdefault(item.patient_id, []).append((item.rank, row["prob"]))
    out = []
    for p in inputs.patients:
        scored = sorted(by_patient[p.patient_id])
        if predictor.test_images == "mean":
            prob, rule = float(np.mean([s for _, s in scored])), "mean of the patient's images"
        else:
            prob, rule = scored[0][1], "the patient's first image"
        out.append(
            {
                "patient_id": p.patient_id,
                "row": p.row,
                "n_images": len(scored),
                "prob": prob,
                "predicted_class": int(prob >= predictor.threshold),
                "threshold": predictor.threshold,
                "rule": rule,
                "label": "" if p.label is None else p.label,
                "model": predictor.description,
            }
        )
    return out


def _metrics(patients: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Metrics over patients with a known outcome (None when no outcome was given)."""
    from core.evaluation.metrics import binary_metrics

    known = [p for p in patients if p["label"] != ""]
    if not known:
        return None
    y = np.array([int(p["label"]) for p in known])
    prob = np.array([float(p["prob"]) for p in known])
    metrics = binary_metrics(y, prob, float(known[0]["threshold"]))
    metrics = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in metrics.items()}
    return {"n_patients": len(known), "n_positive": int(y.sum()), **metrics}


def write_results(result: PredictionResult, out: str | Path) -> dict[str, Path]:
    """OUT: one row per image; beside it, for tables, OUT_patients.csv (one row per
    patient) and, with an outcome, OUT_metrics.json. Every file written atomically."""
    from core.atomic import atomic_write_json
    from core.runs.folder import write_csv

    out = Path(out)
    written = {}
    fields = list(IMAGE_FIELDS) + [f for f in CAM_FIELDS if result.images and f in result.images[0]]
    write_csv(out, result.images, fields)
    written["images"] = out
    if result.patients:
        path = out.with_name(out.stem + "_patients.csv")
        write_csv(path, result.patients, PATIENT_FIELDS)
        written["patients"] = path
    if result.metrics is not None:
        path = out.with_name(out.stem + "_metrics.json")
        atomic_write_json(path, result.metrics)
        written["metrics"] = path
    return written
