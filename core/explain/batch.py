"""Explain many infants of a run into one folder, and read that folder back.

`bpd explain` writes, per infant, the raw map (.npy, the model-input square scaled to its
own maximum), the overlay PNG at the radiograph's own resolution (core.explain.overlay)
and one index.csv row (fold, probabilities, image, the map's peak, whether it is empty).
Maps are computed first and drawn afterwards, so "shared" scaling can use the largest
peak of every infant. The run folder's explanations/ (RunFolder.explanations_dir) is the
default folder: the app's Review page reads it as a cache.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import atomic_write_json
from core.csv_cells import read_csv, write_csv
from core.errors import InputError
from core.explain.overlay import SCALINGS, Caption, write_overlay

INDEX = "index.csv"
SETTINGS = "explain.json"
FIELDS = ("patient_id", "label", "oof_prob", "model_prob", "fold_id", "image", "peak", "empty",
          "png", "npy")  # fmt: skip


def _stem(i: int, patient_id: str) -> str:
    # numbered: two ids that differ only in characters a file name cannot hold stay apart
    return f"{i + 1:04d}_" + "".join(c if c.isalnum() or c in "-_." else "-" for c in patient_id)


def tested_patients(ex, repeat: int) -> list[str]:
    """Every patient a finished fold of `repeat` tested, grouped by fold (one model at a
    time in memory)."""
    ids = [p for f in ex.folds.values() if int(f.get("repeat", 0)) == repeat
           for p in f["test_patients"]]  # fmt: skip
    return sorted(ids, key=lambda pid: ex.fold_of(pid, repeat))


def explain_run(
    run_dir: str | Path,
    out: str | Path,
    *,
    patients: list[str] | None = None,
    repeat: int = 0,
    scaling: str = "shared",
    opacity: float = 0.4,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Out-of-fold Grad-CAM of `patients` (default: every tested one) into `out`.
    Returns the index rows. Progress counts maps, then overlays (2 x patients steps)."""
    from core.cohort.images import read_image
    from core.explain.oof import RunExplainer, explain_oof

    if scaling not in SCALINGS:
        raise InputError(f"--cam-scale must be one of {', '.join(SCALINGS)}, not {scaling!r}")
    if not 0.0 <= opacity <= 1.0:
        raise InputError(f"--opacity must be between 0 and 1, got {opacity}")
    ex = RunExplainer.open(run_dir)
    ids = list(patients) if patients else tested_patients(ex, repeat)
    if not ids:
        raise InputError(f"no finished fold of repeat {repeat} tested any patient", file=run_dir)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    threshold = _run_threshold(ex)
    center_crop = ex.run.preprocess(ex.config).center_crop
    total = 2 * len(ids)
    rows = []
    crops = {}  # row index -> the image's crop box (the overlay maps back through it)
    for i, pid in enumerate(ids):
        e = explain_oof(ex, pid, repeat=repeat)
        crops[i] = e.crop
        npy = out / f"{_stem(i, pid)}_cam.npy"
        save_map(e.cam, npy)
        label, oof_prob = ex.label(e.fold_id, pid), ex.fold_prob(e.fold_id, pid)
        rows.append({"patient_id": pid, "label": "" if label is None else label,
                     "oof_prob": "" if oof_prob is None else oof_prob, "model_prob": e.prob,
                     "fold_id": e.fold_id, "image": str(e.image), "peak": e.peak,
                     "empty": int(e.peak <= 0), "png": f"{_stem(i, pid)}_cam.png",
                     "npy": npy.name})  # fmt: skip
        if on_progress:
            on_progress(i + 1, total)
    peak = shared_peak(rows)
    for i, row in enumerate(rows):
        cam = np.load(out / row["npy"], allow_pickle=False)  # not all maps kept in memory
        caption = Caption(
            infant=row["patient_id"],
            prob=float(row["oof_prob"] if row["oof_prob"] != "" else row["model_prob"]),
            threshold=threshold,
            label=None if row["label"] == "" else int(row["label"]),
            fold=f"fold {row['fold_id']} (out-of-fold: never trained on this infant)",
        )
        pixels = read_image(row["image"]).pixels
        write_overlay(out / row["png"], pixels, cam, float(row["peak"]), caption=caption,
                      scaling=scaling, shared_peak=peak, center_crop=center_crop,
                      opacity=opacity, what="run's explained infants",
                      crop=crops[i])  # fmt: skip
        if on_progress:
            on_progress(len(ids) + i + 1, total)
    write_csv(out / INDEX, rows, FIELDS)
    atomic_write_json(out / SETTINGS, {"repeat": repeat, "scaling": scaling, "opacity": opacity,
                                       "shared_peak": peak, "threshold": threshold,
                                       "center_crop": center_crop})  # fmt: skip
    return rows


def _run_threshold(ex) -> float:
    return ex.run.threshold_for_new_patients(ex.config)


def shared_peak(rows: list[dict[str, Any]]) -> float:
    """The largest map peak of a set: 1.0 of the shared colour scale."""
    return max((float(r["peak"]) for r in rows), default=0.0)


def save_map(cam: np.ndarray, path: Path) -> Path:
    from core.explain.gradcam import save_cam_npy

    return save_cam_npy(cam, path)


@dataclass
class CachedExplanations:
    """A folder `explain_run` wrote: rows by patient, settings, the shared peak."""

    folder: Path
    rows: dict[str, dict[str, str]]
    settings: dict[str, Any]

    @property
    def shared_peak(self) -> float:
        return shared_peak(list(self.rows.values()))

    def map(self, patient_id: str) -> np.ndarray:
        """The patient's map [R, R] scaled to its own maximum (float32)."""
        row = self.rows[patient_id]
        return np.load(self.folder / row["npy"], allow_pickle=False).astype(np.float32)

    def peak(self, patient_id: str) -> float:
        return float(self.rows[patient_id]["peak"])

    def overlay_png(self, patient_id: str) -> Path:
        return self.folder / self.rows[patient_id]["png"]


def read_explanations(folder: str | Path) -> CachedExplanations | None:
    """The explanations in `folder`, or None when none were written (or only some: an
    interrupted `bpd explain` writes index.csv last)."""
    folder = Path(folder)
    if not (folder / INDEX).is_file():
        return None
    rows = {r["patient_id"]: r for r in read_csv(folder / INDEX)}
    path = folder / SETTINGS
    settings = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return CachedExplanations(folder, rows, settings)


def run_explanations(run_dir: str | Path) -> CachedExplanations | None:
    """The run's cached out-of-fold explanations (its explanations/ folder), if any."""
    from core.runs.folder import RunFolder

    return read_explanations(RunFolder(run_dir).explanations_dir)
