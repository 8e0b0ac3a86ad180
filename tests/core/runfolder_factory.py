"""TEST DATA ONLY: a finished run folder from computed numbers, written through
core.runs.folder.RunFolder (the same writer as a real run, docs/run-folder.md).

The "model" is a deterministic noisy score on synthetic labels (no training), so report
and compare can be tested without the training engine. Every metric in it is computed
from the predictions it writes (core.scoring.metrics), so the files agree with each
other the way a real run's do.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedKFold

from core.runs.folder import RunFolder
from core.runs.summary import prediction_fields
from core.scoring.metrics import auroc, binary_metrics, summarize_folds


def make_run_folder(
    run_dir: Path,
    *,
    n_patients: int = 30,
    n_positive: int = 12,
    repeats: int = 2,
    folds: int = 3,
    signal: float = 0.8,
    score_seed: int = 0,
    fold_seed: int = 0,
    patient_ids: list[str] | None = None,
    epochs: int = 3,
    threshold: float = 0.5,
    init: str = "xrv",
    baselines: dict | None = None,
    cohort_source: dict | None = None,
) -> Path:
    """Write a finished run. Same `fold_seed` and patients -> same folds (comparable runs);
    `score_seed`/`signal` change the "model". `cohort_source` as train_cmd writes it."""
    run_dir = Path(run_dir)
    ids = patient_ids or [f"P{i:03d}" for i in range(n_patients)]
    labels = np.array([1] * n_positive + [0] * (len(ids) - n_positive))
    config = {
        "train": {
            "init": init,
            "strategy": "probe+progressive",
            "epochs": epochs,
            "cv_folds": folds,
            "cv_repeats": repeats,
            "threshold": threshold,
        },
        "cohort_source": cohort_source
        or {
            "table": "/data/site/cohort.csv",  # not on this machine, as after moving a run
            "images_root": None,
            "mapping": None,
            "outcome": {
                "column": "bpd_grade",
                "positive": ["moderate", "severe"],
                "negative": ["none", "mild"],
            },
        },
        "preprocess": {"resolution": 64, "center_crop": None},
        "versions": {"python": "3.11", "torch": "2.14.1", "bpd": "0.1.0"},
        "seed": 42,
        "created": "2026-11-26T20:00:00+00:00",
    }
    cohort = {
        "summary": {
            "table": "cohort.csv",
            "n_patients": len(ids),
            "n_images": len(ids) + 5,
            "n_positive": int(labels.sum()),
            "n_negative": int(len(ids) - labels.sum()),
            "n_excluded": 2,
            "excluded_by_reason": {"outcome_not_recorded": 1, "missing_file": 1},
            "n_errors": 2,
            "n_warnings": 0,
            "outcome_column": "bpd_grade",
            "positive_values": ["moderate", "severe"],
            "negative_values": ["none", "mild"],
        },
        "exclusions": [
            {
                "patient_id": "X1",
                "reason": "outcome_not_recorded",
                "message": "keine Angabe",
                "row": 40,
            },
            {"patient_id": "X2", "reason": "missing_file", "message": "image not found", "row": 41},
        ],
        "problems": [],
    }
    run = RunFolder.create(run_dir, config, cohort)
    label_of = dict(zip(ids, labels.tolist(), strict=True))
    rng = np.random.default_rng(score_seed)
    # A per-patient "difficulty" shared by every run and repeat (as real infants are
    # hard or easy for every model), plus run-specific noise.
    difficulty = dict(zip(ids, np.random.default_rng(12345).normal(0, 1.0, len(ids)), strict=True))

    fold_records, per_repeat_prob = [], {pid: {} for pid in ids}
    for r in range(repeats):
        skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=fold_seed * 100 + r)
        for f, (train_idx, test_idx) in enumerate(skf.split(np.zeros(len(ids)), labels)):
            fold_id = f"r{r}-f{f}"
            test_ids = [ids[i] for i in test_idx]
            y = labels[test_idx]
            shared = np.array([difficulty[pid] for pid in test_ids])
            logit = signal * (2 * y - 1) + shared + rng.normal(0, 0.7, len(y))
            prob = 1 / (1 + np.exp(-logit))
            history = []
            for e in range(epochs):
                # Epoch e's scores: the final logit shrunk towards noise, so test AUROC
                # rises over epochs, computed like a real loop would.
                w = (e + 1) / epochs
                s_e = w * logit + (1 - w) * rng.normal(0, 2.0, len(y))
                history.append(
                    {
                        "epoch": e,
                        "phase": "head" if e == 0 else "layer4",
                        "train_loss": float(0.7 * math.exp(-0.3 * e) + 0.05 * rng.random()),
                        "test_auroc": auroc(y, s_e),
                        "lrs": {"head": 1e-3 * (1 - w) + 1e-5},
                        "seconds": 1.0,
                    }
                )
            preds = [
                {
                    "patient_id": pid,
                    "label": int(yy),
                    "prob": float(p),
                    "logit": float(lg),
                    "repeat": r,
                    "fold": f,
                }
                for pid, yy, p, lg in zip(test_ids, y, prob, logit, strict=True)
            ]
            for row in preds:
                per_repeat_prob[row["patient_id"]][r] = row["prob"]
            metrics = binary_metrics(y, prob, threshold=threshold)
            record = {
                "fold_id": fold_id,
                "repeat": r,
                "fold": f,
                "train_patients": [ids[i] for i in train_idx],
                "test_patients": test_ids,
                "metrics": metrics,
                "threshold": threshold,
                "history": history,
                "finished": True,
            }
            folder = run.fold(fold_id)
            folder.write_predictions(preds)
            folder.write(record)
            fold_records.append(record)

    oof = []
    for pid in ids:
        probs = [per_repeat_prob[pid][r] for r in range(repeats)]
        row = {
            "patient_id": pid,
            "label": label_of[pid],
            "prob": float(np.mean(probs)),
            "n_repeats": repeats,
        }
        row.update({f"prob_r{r}": p for r, p in enumerate(probs)})
        oof.append(row)
    run.write_predictions(oof, prediction_fields(repeats))

    summary = summarize_folds([rec["metrics"] for rec in fold_records])
    summary.update(
        pooled_auroc=auroc(labels, np.array([row["prob"] for row in oof])),
        n_patients=len(ids),
        n_positive=int(labels.sum()),
        n_folds=len(fold_records),
        repeat_auroc=[
            float(np.mean([rec["metrics"]["auroc"] for rec in fold_records if rec["repeat"] == r]))
            for r in range(repeats)
        ],
    )
    if baselines is not None:
        summary["baselines"] = baselines
    run.write_summary(summary)

    run.write_state("finished")
    run.events().emit("run_finished", summary=summary)
    return run_dir
