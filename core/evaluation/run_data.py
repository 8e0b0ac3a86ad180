"""A run folder's results for reports and comparisons, read through RunFolder. Read-only.

A run still in progress or cancelled is readable: only finished folds count, and the
out-of-fold table is rebuilt from the folds' predictions until the run has pooled them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InputError
from core.runs.folder import FinishedFold, RunFolder


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


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _fold_result(done: FinishedFold) -> FoldResult:
    rec = done.info
    fold = FoldResult(
        fold_id=str(rec.get("fold_id", done.fold_id)),
        repeat=done.repeat,
        fold=done.fold,
        train_patients=[str(p) for p in rec.get("train_patients", [])],
        test_patients=done.test_patients,
        metrics=rec.get("metrics", {}) or {},
        threshold=_float(rec.get("threshold", 0.5)),
        history=rec.get("history", []) or [],
    )
    if done.folder.has_predictions:
        rows = done.folder.read_predictions()
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


def _oof_from_table(rows: list[dict[str, str]], path: Path) -> OutOfFold:
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
    run = RunFolder(run_dir)
    if not run.path.is_dir():
        raise InputError("is not a run folder (no such directory)", file=run.path)
    folds = [_fold_result(f) for f in run.finished_folds()]
    if not folds and run.has_config and run.is_federated():
        raise InputError(
            "is a federated run: its results are per site (`bpd report` shows them); "
            "it has no cross-validation folds of its own",
            file=run.path,
        )
    if not folds:
        raise InputError("has no finished fold yet", file=run.path)
    pooled = run.predictions()
    oof = (
        _oof_from_folds(folds) if pooled is None else _oof_from_table(pooled, run.predictions_path)
    )
    return RunData(
        run_dir=run.path,
        config=run.config() if run.has_config else {},
        cohort=run.cohort(),
        state=run.state(),
        summary=run.summary() or {},
        folds=folds,
        oof=oof,
    )
