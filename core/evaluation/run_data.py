"""Read a run folder (layout in core/runs) for reports and comparisons. Read-only.

A run still in progress or cancelled is readable: only finished folds count, and the
out-of-fold table is rebuilt from the folds' predictions when predictions.csv is absent.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InputError


@dataclass
class FoldResult:
    fold_id: str
    repeat: int
    fold: int
    train_patients: list[str]
    test_patients: list[str]
    metrics: dict[str, float]
    threshold: float
    history: list[dict[str, Any]]
    patient_ids: list[str] = field(default_factory=list)  # test predictions, file order
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    probs: np.ndarray = field(default_factory=lambda: np.zeros(0))


@dataclass
class OutOfFold:
    """One row per patient: mean probability over the repeats that tested them."""

    patient_ids: list[str]
    labels: np.ndarray
    probs: np.ndarray
    repeat_probs: np.ndarray  # [n_patients, n_repeats], NaN where a repeat is missing


@dataclass
class RunData:
    run_dir: Path
    config: dict[str, Any]
    cohort: dict[str, Any]
    state: dict[str, Any]
    summary: dict[str, Any]
    folds: list[FoldResult]
    oof: OutOfFold

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def n_repeats(self) -> int:
        return len({f.repeat for f in self.folds})


def _read_json(path: Path, required: bool = False) -> dict[str, Any]:
    if not path.exists():
        if required:
            raise InputError("missing from the run folder", file=path)
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid JSON ({exc})", file=path) from exc


def _read_csv(path: Path) -> list[dict[str, str]]:
    from core.csv_cells import read_csv  # undoes the spreadsheet escape of ids

    return read_csv(path)


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _read_fold(fold_dir: Path) -> FoldResult | None:
    rec = _read_json(fold_dir / "fold.json")
    if not rec or not rec.get("finished", False):
        return None
    fold = FoldResult(
        fold_id=str(rec["fold_id"]),
        repeat=int(rec.get("repeat", 0)),
        fold=int(rec.get("fold", 0)),
        train_patients=[str(p) for p in rec.get("train_patients", [])],
        test_patients=[str(p) for p in rec.get("test_patients", [])],
        metrics=rec.get("metrics", {}) or {},
        threshold=_float(rec.get("threshold", 0.5)),
        history=rec.get("history", []) or [],
    )
    pred_path = fold_dir / "predictions.csv"
    if pred_path.exists():
        rows = _read_csv(pred_path)
        fold.patient_ids = [r["patient_id"] for r in rows]
        fold.labels = np.array([int(r["label"]) for r in rows], dtype=int)
        fold.probs = np.array([_float(r["prob"]) for r in rows])
    return fold


def _oof_from_folds(folds: list[FoldResult]) -> OutOfFold:
    repeats = sorted({f.repeat for f in folds})
    label: dict[str, int] = {}
    probs: dict[str, dict[int, float]] = {}
    for f in folds:
        for pid, y, p in zip(f.patient_ids, f.labels, f.probs, strict=True):
            label[pid] = int(y)
            probs.setdefault(pid, {})[f.repeat] = float(p)
    ids = list(label)
    rep = np.array([[probs[i].get(r, math.nan) for r in repeats] for i in ids]).reshape(
        len(ids), len(repeats)
    )
    return OutOfFold(ids, np.array([label[i] for i in ids], dtype=int), np.nanmean(rep, 1), rep)


def _oof_from_csv(path: Path) -> OutOfFold:
    rows = _read_csv(path)
    if not rows:
        raise InputError("has no rows", file=path)
    rep_cols = sorted((c for c in rows[0] if c.startswith("prob_r")), key=lambda c: int(c[6:]))
    try:
        return OutOfFold(
            patient_ids=[r["patient_id"] for r in rows],
            labels=np.array([int(r["label"]) for r in rows], dtype=int),
            probs=np.array([_float(r["prob"]) for r in rows]),
            repeat_probs=np.array([[_float(r[c]) for c in rep_cols] for r in rows]).reshape(
                len(rows), len(rep_cols)
            ),
        )
    except (KeyError, ValueError) as exc:
        raise InputError(f"unexpected columns or values ({exc})", file=path) from exc


def load_run(run_dir: str | Path) -> RunData:
    """Everything a report or comparison needs; InputError names what is missing."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError("is not a run folder (no such directory)", file=run_dir)
    folds_dir = run_dir / "folds"
    folds = []
    if folds_dir.is_dir():
        for d in sorted(folds_dir.iterdir()):
            if d.is_dir():
                f = _read_fold(d)
                if f is not None:
                    folds.append(f)
    if not folds:
        raise InputError(
            "has no finished fold yet (folds/*/fold.json with finished: true)", file=run_dir
        )
    folds.sort(key=lambda f: (f.repeat, f.fold))
    oof_path = run_dir / "predictions.csv"
    oof = _oof_from_csv(oof_path) if oof_path.exists() else _oof_from_folds(folds)
    return RunData(
        run_dir=run_dir,
        config=_read_json(run_dir / "config.json"),
        cohort=_read_json(run_dir / "cohort.json"),
        state=_read_json(run_dir / "state.json"),
        summary=_read_json(run_dir / "summary.json"),
        folds=folds,
        oof=oof,
    )
