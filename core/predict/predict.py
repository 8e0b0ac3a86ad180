"""Predictions for new radiographs: the run's exact preprocessing, then the model(s).

Each image is decoded (core.cohort.images.read_image), preprocessed with the run's
PreprocessConfig and fed to the model(s) as in training (core.cohort.preprocess).
Per image: probability of the positive outcome, class at the run's threshold, model.
Per patient (tables): the run's scoring rule, its first image ("first") or the mean
over its images ("mean"), as in the cross-validation that estimated its accuracy.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.cohort.crops import Crop, CropTable
from core.cohort.images import read_image
from core.cohort.preprocess import preprocess, to_model_input
from core.errors import ImageError
from core.predict.crop_choice import CROP_FIELD, crop_choice
from core.predict.inputs import InputProblem, PredictionInputs
from core.predict.models import Predictor

log = logging.getLogger(__name__)

IMAGE_FIELDS = ("patient_id", "row", "image", "prob", "predicted_class", "threshold", "model",
                "problem")  # fmt: skip
PATIENT_FIELDS = ("patient_id", "row", "n_images", "prob", "predicted_class", "threshold",
                  "rule", "label", "model", "problem")  # fmt: skip
CAM_FIELDS = ("cam_png", "cam_npy", "cam_peak")


@dataclass
class PredictionResult:
    images: list[dict[str, Any]]
    patients: list[dict[str, Any]]
    metrics: dict[str, Any] | None = None
    problems: list[InputProblem] = field(default_factory=list)  # rows not predicted

    @property
    def partial(self) -> bool:
        """Some rows or images could not be predicted (the CLI exits PARTIAL_EXIT)."""
        return bool(self.problems)


def output_paths(out: str | Path, inputs: PredictionInputs, with_metrics: bool) -> dict:
    """The files `write_results` writes: OUT, and for a table OUT_patients.csv and, with
    an outcome, OUT_metrics.json (checked before predicting, so nothing is overwritten)."""
    out = Path(out)
    paths = {"images": out}
    if inputs.patients:
        paths["patients"] = out.with_name(out.stem + "_patients.csv")
        if with_metrics:
            paths["metrics"] = out.with_name(out.stem + "_metrics.json")
    return paths


def cam_paths(inputs: PredictionInputs, cam_dir: str | Path) -> list[tuple[Path, Path]]:
    """(overlay PNG, map .npy) per image, numbered in input order, so two images with the
    same name (or ids that sanitise alike) never share a file."""
    out = []
    for i, item in enumerate(inputs.images):
        who = f"{item.patient_id}_" if item.patient_id else ""
        stem = f"{i + 1:04d}_{_safe(who)}{_safe(item.path.stem)}"
        out.append((Path(cam_dir) / f"{stem}_cam.png", Path(cam_dir) / f"{stem}_cam.npy"))
    return out


def load_pixels(
    path: Path,
    predictor: Predictor,
    crop: Crop | None = None,
    decoded: Callable[[], np.ndarray] | None = None,
) -> np.ndarray:
    """uint16 [R, R]: the image as the model was trained to see it, cut to its crop box
    and rotation if it has one (ImageError names it). `decoded`: its pixels, where the
    caller has decoded them already."""
    pixels = decoded() if decoded else _decode(path)
    return preprocess(pixels, predictor.preprocess, crop)


def _decode(path: Path) -> np.ndarray:
    return read_image(path).pixels


def predict(
    predictor: Predictor,
    inputs: PredictionInputs,
    *,
    cam_dir: str | Path | None = None,
    opacity: float = 0.4,
    cam_scale: str = "shared",
    on_progress: Callable[[int, int], None] | None = None,
    crops: CropTable | None = None,
    autobox: bool = False,
) -> PredictionResult:
    """Score every image (and patient); with `cam_dir`, also write a Grad-CAM overlay PNG
    and the raw map .npy per image (ensemble: the mean of the fold models' maps).
    An image that cannot be decoded is listed with its problem and the others are still
    scored, like the table rows `inputs.problems` lists; ImageError only when no image
    at all could be scored. An image is cut to its crop box: from `crops` (the new
    images' sidecar), else the box the run trained it with (same content hash), else
    with `autobox` the automatic chest box (core.predict.crop_choice)."""
    choice = crop_choice(predictor.crop_policy, predictor.crops, crops, autobox)
    image_crops: list[Crop | None] = []
    rows: list[dict[str, Any]] = []
    problems = list(inputs.problems)
    n = len(inputs.images)
    cams = cam_paths(inputs, cam_dir) if cam_dir is not None else None
    if n > 1 or cams is not None:  # one image, no map: each fold model loaded only once
        predictor.keep_models_loaded()
    first_error: ImageError | None = None
    for i, item in enumerate(inputs.images):
        row = {
            "patient_id": item.patient_id,
            "row": item.row if item.row is not None else "",
            "image": str(item.path),
            "prob": "",
            "predicted_class": "",
            "threshold": predictor.threshold,
            "model": predictor.description,
            "problem": "",
        }
        image_crops.append(None)  # one entry per image, also when it fails
        try:
            # decoded once: --autobox finds its box on the same pixels
            decoded = functools.cache(functools.partial(_decode, item.path))
            image_crops[-1], how = choice.for_image(item.path, decoded)
            if choice.column:
                row[CROP_FIELD] = how
            pixels = load_pixels(item.path, predictor, image_crops[-1], decoded)
        except ImageError as exc:
            first_error = first_error or exc
            row["problem"] = exc.detail
            problems.append(InputProblem(exc.detail, item.row, item.patient_id, str(item.path)))
        else:
            x = to_model_input(pixels)[None, None]
            prob = float(predictor.probabilities(x)[0])
            row.update(prob=prob, predicted_class=int(prob >= predictor.threshold))
            if cams is not None:
                row.update(_write_map(predictor, x, cams[i]))
        rows.append(row)
        if on_progress:
            on_progress(i + 1, n)
    if first_error is not None and all(r["prob"] == "" for r in rows):
        raise first_error  # nothing usable: an error, not a partial result
    if cams is not None:  # overlays after every map: shared scaling needs the largest
        _write_overlays(predictor, inputs, rows, cam_scale, opacity, image_crops)
    rows += [_problem_row(p, predictor) for p in inputs.problems if not p.patient_excluded]
    patients = _patient_rows(predictor, inputs, rows)
    return PredictionResult(rows, patients, _metrics(patients) if patients else None, problems)


def _problem_row(problem: InputProblem, predictor: Predictor) -> dict[str, Any]:
    """A table row that named no usable image, listed in the per-image file."""
    return {
        "patient_id": problem.patient_id,
        "row": problem.row if problem.row is not None else "",
        "image": problem.file,
        "prob": "",
        "predicted_class": "",
        "threshold": predictor.threshold,
        "model": predictor.description,
        "problem": problem.message,
    }


def ensemble_cam(predictor: Predictor, x: torch.Tensor) -> tuple[np.ndarray, float]:
    """Grad-CAM of the positive logit, scaled to its maximum, and that maximum (see
    core.explain.gradcam.explain_with_peak). For an ensemble the mean of the models'
    unscaled maps, so the map explains the averaged prediction on the models' own scale."""
    from core.explain.gradcam import explain_with_peak

    raw = [cam * peak for cam, peak in (explain_with_peak(m, x) for _, m in predictor.models)]
    mean = np.mean(raw, axis=0).astype(np.float32)
    peak = float(mean.max())
    return (mean / peak if peak > 0 else np.zeros_like(mean)), peak


def _write_map(predictor, x, paths: tuple[Path, Path]) -> dict[str, Any]:
    from core.explain.gradcam import save_cam_npy

    cam, peak = ensemble_cam(predictor, x)
    npy = save_cam_npy(cam, paths[1])
    return {"cam_png": str(paths[0]), "cam_npy": str(npy), "cam_peak": peak}


def _write_overlays(predictor, inputs, rows, scaling: str, opacity: float, crops) -> None:
    """Each map over its radiograph at the image's own resolution (core.explain.overlay)."""
    from core.explain.overlay import Caption, write_overlay

    done = [r for r in rows if r.get("cam_npy")]
    shared = max((float(r["cam_peak"]) for r in done), default=0.0)
    several = len(predictor.models) > 1
    for item, row, crop in zip(inputs.images, rows, crops, strict=False):
        if not row.get("cam_npy"):
            continue
        caption = Caption(
            infant=item.patient_id or None,
            image=item.path.name,
            prob=float(row["prob"]),
            threshold=predictor.threshold,
            fold=predictor.description + (" (mean of their maps)" if several else ""),
        )
        write_overlay(row["cam_png"], read_image(item.path).pixels,
                      np.load(row["cam_npy"], allow_pickle=False), float(row["cam_peak"]),
                      caption=caption, scaling=scaling, shared_peak=shared,
                      center_crop=predictor.preprocess.center_crop, opacity=opacity,
                      what="prediction's images", crop=crop)  # fmt: skip


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)


def _patient_rows(predictor: Predictor, inputs: PredictionInputs, rows) -> list[dict]:
    if not inputs.patients:
        return []
    by_patient: dict[str, list[tuple[int, float]]] = {}
    problems: dict[str, list[str]] = {}
    for item, row in zip(inputs.images, rows, strict=False):  # rows: then the problem rows
        if row["prob"] == "":
            problems.setdefault(item.patient_id, []).append(row["problem"])
        else:  # as in training: an unreadable image is skipped, the next one scored
            by_patient.setdefault(item.patient_id, []).append((item.rank, row["prob"]))
    out = []
    for p in inputs.patients:
        scored = sorted(by_patient.get(p.patient_id, []))
        problem = "; ".join(problems.get(p.patient_id, []))
        if not scored:
            out.append({"patient_id": p.patient_id, "row": p.row, "n_images": 0, "prob": "",
                        "predicted_class": "", "threshold": predictor.threshold, "rule": "",
                        "label": "" if p.label is None else p.label,
                        "model": predictor.description, "problem": problem})  # fmt: skip
            continue
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
                "problem": problem,
            }
        )
    for ex in (q for q in inputs.problems if q.patient_excluded):
        out.append({"patient_id": ex.patient_id, "row": ex.row if ex.row is not None else "",
                    "n_images": 0, "prob": "", "predicted_class": "",
                    "threshold": predictor.threshold, "rule": "", "label": "",
                    "model": predictor.description, "problem": ex.message})  # fmt: skip
    return out


def _metrics(patients: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Metrics over patients with a known outcome (None when no outcome was given)."""
    from core.scoring.metrics import binary_metrics

    known = [p for p in patients if p["label"] != "" and p["prob"] != ""]
    if not known:
        return None
    y = np.array([int(p["label"]) for p in known])
    prob = np.array([float(p["prob"]) for p in known])
    metrics = binary_metrics(y, prob, float(known[0]["threshold"]))
    metrics = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in metrics.items()}
    from core.runs.summary import small_cohort_caveat

    counts = [(int(y.sum()), int(len(y) - y.sum()))]
    caveat = small_cohort_caveat(counts, where="there are only")
    return {"n_patients": len(known), "n_positive": int(y.sum()), **metrics, "caveat": caveat}


def write_results(result: PredictionResult, out: str | Path) -> dict[str, Path]:
    """OUT: one row per image (a row that could not be predicted has an empty prob and
    its `problem`); beside it, for tables, OUT_patients.csv (one row per patient) and,
    with an outcome, OUT_metrics.json. Every file written atomically, every CSV cell
    spreadsheet-safe (core.csv_cells)."""
    from core.atomic import atomic_write_json
    from core.csv_cells import write_csv

    out = Path(out)
    written = {}
    cam = [f for f in CAM_FIELDS if any(f in r for r in result.images)]
    crop = [CROP_FIELD] if any(CROP_FIELD in r for r in result.images) else []
    write_csv(out, result.images, list(IMAGE_FIELDS) + crop + cam)
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
