"""With and without crops: AUROC on the same folds, and where the Grad-CAM maps look.

Two finished runs on the same cohort, seed and folds: A on whole images, B cut to crop
boxes (`bpd train --crops FILE`), each explained out of fold with `bpd explain RUN --all`
(the maps in RUN/explanations). Reports

- AUROC per fold for both runs, mean +- SD over folds, the paired difference B - A per
  fold, the corrected resampled t over the folds and DeLong on the pooled out-of-fold
  probabilities (core.evaluation.compare, which refuses runs on different folds);
- per run, the share of each infant's Grad-CAM mass inside a reference chest box of that
  image and inside the border band (the outer 10% of the image's width and height on each
  side), the map first put back onto the uncropped radiograph through the run's own box
  (core.explain.overlay.map_to_image; a cropped run's map is zero outside its box), and
  the share of the image's area those regions cover: what a flat map would give.

Boxes come from crop sidecars given as NAME=FILE (repeat a NAME to pool files); every row
counts, whatever its source. The last line printed is JSON (also written with --json),
per infant too, so a figure can be redrawn from it.

    python benchmarks/crop_effect.py RUN_A RUN_B \
        --boxes hand=tests/data/crops/demo_chest_boxes.csv \
        --boxes hand=tests/data/crops/demo_chest_boxes_heldout.csv \
        --boxes autobox=/tmp/demo.crops.csv [--band 0.1] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np

from core.cohort.crops import Crop, CropTable, file_sha256, read_sidecar
from core.errors import InputError

BAND = 0.10  # the border band: this fraction of the width (height) at each side


def region_masks(
    shape: tuple[int, int], boxes: dict[str, Crop | None], band: float = BAND
) -> dict[str, np.ndarray | None]:
    """Boolean masks [H, W] by pixel centre: "box:NAME" for each box (None where the
    image has none) and "band" for the outer `band` of the width and height."""
    h, w = int(shape[0]), int(shape[1])
    y, x = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    masks: dict[str, np.ndarray | None] = {}
    for name, box in boxes.items():
        if box is None:
            masks[f"box:{name}"] = None
            continue
        u, v = box.to_box(x, y)  # in the box's own frame, so a rotated box counts too
        masks[f"box:{name}"] = (u >= 0) & (u < box.width) & (v >= 0) & (v < box.height)
    bx, by = band * w, band * h
    masks["band"] = (x < bx) | (x >= w - bx) | (y < by) | (y >= h - by)
    return masks


def mass_shares(values: np.ndarray, masks: dict[str, np.ndarray | None]) -> dict[str, Any]:
    """Share of the map's mass in each mask (NaN, where the model saw nothing, counts as
    zero) and the share of the image's area each covers; None for a missing mask, and
    every share None for a map without mass."""
    m = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0).clip(min=0.0)
    total = float(m.sum())
    out: dict[str, Any] = {}
    for name, mask in masks.items():
        if mask is None:
            out[name] = out[f"{name}_area"] = None
            continue
        out[name] = float(m[mask].sum()) / total if total > 0 else None
        out[f"{name}_area"] = float(mask.mean())
    return out


def read_boxes(specs: list[str]) -> dict[str, CropTable]:
    """NAME=FILE specs -> boxes by name; a NAME given twice pools its files (the later
    file's box wins for an image in both)."""
    sets: dict[str, CropTable] = {}
    for spec in specs:
        name, sep, file = spec.partition("=")
        if not sep or not name.strip() or not file.strip():
            raise InputError(f"--boxes takes NAME=FILE, not {spec!r}")
        table = read_sidecar(file.strip())
        name = name.strip()
        sets[name] = sets[name].merged(table) if name in sets else table
    return sets


def infant_maps(run_dir: str | Path, boxes: dict[str, CropTable], band: float) -> list[dict]:
    """One row per explained infant of the run: who, the image, the run's own crop box
    (if any) and the mass shares of the map on the uncropped radiograph."""
    from core.cohort.images import read_image
    from core.explain.batch import run_explanations
    from core.explain.overlay import map_to_image
    from core.runs.folder import RunFolder

    run = RunFolder.existing(run_dir)
    cached = run_explanations(run.path)
    if cached is None:
        raise InputError(f"no explanations: run `bpd explain {run.path} --all` first",
                         file=run.explanations_dir)  # fmt: skip
    config = run.config()
    center_crop = run.preprocess(config).center_crop
    trained_on = run.crops(config)
    rows = []
    for pid, row in cached.rows.items():
        if row.get("empty") == "1":
            continue  # a flat map has no mass to share out
        path = Path(row["image"])
        sha = file_sha256(path)
        pixels = read_image(path).pixels
        crop = trained_on.for_sha(sha)
        values = map_to_image(cached.map(pid), pixels.shape, center_crop, crop)
        refs = {name: _any_box(table, sha) for name, table in boxes.items()}
        shares = mass_shares(values, region_masks(pixels.shape, refs, band))
        rows.append({"patient_id": pid, "label": row["label"], "fold_id": row["fold_id"],
                     "image": str(path), "cropped": crop is not None, **shares})  # fmt: skip
    return rows


def _any_box(table: CropTable, sha: str) -> Crop | None:
    entry = table.entry(sha)
    return entry.crop if entry is not None else None


def summarise(rows: list[dict], key: str) -> dict[str, Any]:
    """Mean, median and SD over the infants with a value for `key`, and its area."""
    values = np.array([r[key] for r in rows if r.get(key) is not None], dtype=np.float64)
    areas = np.array([r[f"{key}_area"] for r in rows if r.get(key) is not None])
    if not len(values):
        return {"n": 0}
    return {"n": len(values), "mean": float(values.mean()),
            "median": float(np.median(values)),
            "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "area_mean": float(areas.mean())}  # fmt: skip


def paired(rows_a: list[dict], rows_b: list[dict], key: str) -> dict[str, Any]:
    """B - A for the infants with a value in both runs (a flat map in either is left out)."""
    b = {r["patient_id"]: r[key] for r in rows_b if r.get(key) is not None}
    pairs = [(r[key], b[r["patient_id"]]) for r in rows_a
             if r.get(key) is not None and r["patient_id"] in b]  # fmt: skip
    if not pairs:
        return {"n": 0}
    d = np.array([vb - va for va, vb in pairs])
    return {"n": len(d), "mean_difference": float(d.mean()),
            "sd_difference": float(d.std(ddof=1)) if len(d) > 1 else 0.0,
            "b_higher": int((d > 0).sum())}  # fmt: skip


def auroc_table(run_a: str | Path, run_b: str | Path) -> dict[str, Any]:
    """Per-fold AUROC of both runs (same folds, checked), paired differences, tests."""
    from core.evaluation.compare import compare_runs

    result = compare_runs(run_a, run_b)
    folds = result["folds"]
    a, b = np.array(folds["a"]), np.array(folds["b"])
    diff = b - a
    return {
        "folds": folds["keys"],
        "auroc_a": a.tolist(),
        "auroc_b": b.tolist(),
        "mean_a": float(a.mean()),
        "sd_a": float(a.std(ddof=1)),
        "mean_b": float(b.mean()),
        "sd_b": float(b.std(ddof=1)),
        "difference_b_minus_a": diff.tolist(),
        "difference_mean": float(diff.mean()),
        "difference_sd": float(diff.std(ddof=1)),
        "b_better": int((diff > 0).sum()),
        "corrected_t": result["folds_corrected_t"],
        "wilcoxon_folds": folds["wilcoxon"],
        "delong": result["delong"],
        "n_patients": result["n_patients"],
        "n_positive": result["n_positive"],
    }


def crop_effect(run_a, run_b, boxes: dict[str, CropTable], band: float = BAND) -> dict:
    keys = [f"box:{name}" for name in boxes] + ["band"]
    maps = {"a": infant_maps(run_a, boxes, band), "b": infant_maps(run_b, boxes, band)}
    return {
        "run_a": str(run_a),
        "run_b": str(run_b),
        "band": band,
        "auroc": auroc_table(run_a, run_b),
        "map_mass": {run: {k: summarise(rows, k) for k in keys} for run, rows in maps.items()},
        "map_mass_paired": {k: paired(maps["a"], maps["b"], k) for k in keys},
        "infants": maps,
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
    }


def _f(x: float | None, d: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{d}f}"


def format_table(result: dict) -> str:
    auc = result["auroc"]
    lines = [f"A (whole images) = {result['run_a']}", f"B (cropped)      = {result['run_b']}",
             f"{auc['n_patients']} patients ({auc['n_positive']} positive), same folds", "",
             f"{'fold':<10}{'AUROC A':>9}{'AUROC B':>9}{'B - A':>9}"]  # fmt: skip
    for fold, a, b, d in zip(auc["folds"], auc["auroc_a"], auc["auroc_b"],
                             auc["difference_b_minus_a"], strict=True):  # fmt: skip
        lines.append(f"{fold:<10}{_f(a):>9}{_f(b):>9}{d:>+9.3f}")
    lines.append(f"{'mean':<10}{_f(auc['mean_a']):>9}{_f(auc['mean_b']):>9}"
                 f"{auc['difference_mean']:>+9.3f}")  # fmt: skip
    lines.append(f"{'SD':<10}{_f(auc['sd_a']):>9}{_f(auc['sd_b']):>9}"
                 f"{_f(auc['difference_sd']):>9}")  # fmt: skip
    t, dl = auc["corrected_t"], auc["delong"]
    if t:
        lines.append(f"corrected resampled t over folds: p = {_f(t['p_value'], 4)}")
    lines.append(f"pooled out-of-fold AUROC (DeLong): A {_f(dl['auc_a'])}, B {_f(dl['auc_b'])}, "
                 f"p = {_f(dl['p_value'], 4)}")  # fmt: skip
    lines += ["", f"Grad-CAM mass on the uncropped radiograph (mean share over infants; "
              f"area = share of the image a flat map would give; band = outer "
              f"{result['band']:.0%})",
              f"{'region':<14}{'area':>7}{'A':>7}{'n A':>5}{'B':>7}{'n B':>5}"
              f"{'B - A paired':>14}{'n':>5}{'B > A':>7}"]  # fmt: skip
    mass, pairs = result["map_mass"], result["map_mass_paired"]
    for key in mass["a"]:
        a, b, d = mass["a"][key], mass["b"][key], pairs[key]
        if not a.get("n") or not b.get("n"):
            lines.append(f"{key:<14}  (no image of the explained infants has one)")
            continue
        lines.append(f"{key:<14}{_f(a['area_mean']):>7}{_f(a['mean']):>7}{a['n']:>5}"
                     f"{_f(b['mean']):>7}{b['n']:>5}{d['mean_difference']:>+14.3f}{d['n']:>5}"
                     f"{d['b_higher']:>7}")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_a", help="run folder trained on whole images")
    parser.add_argument("run_b", help="run folder trained on crop boxes (same seed, folds)")
    parser.add_argument("--boxes", action="append", default=[], metavar="NAME=FILE",
                        help="reference chest boxes (a crop sidecar); repeat")  # fmt: skip
    parser.add_argument("--band", type=float, default=BAND,
                        help="border band: share of width, height per side (0.1)")  # fmt: skip
    parser.add_argument("--json", metavar="FILE", help="also write the JSON here")
    args = parser.parse_args(argv)
    if not 0 < args.band < 0.5:
        raise SystemExit("--band must be between 0 and 0.5")
    try:
        result = crop_effect(args.run_a, args.run_b, read_boxes(args.boxes), args.band)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(result))
    text = json.dumps(result)
    if args.json:
        from core.atomic import atomic_write_json

        atomic_write_json(args.json, result)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
