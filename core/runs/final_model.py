"""The final model: after the cross-validation, one model trained on every patient.

Same recipe as the folds (init, strategy, epochs, augmentation); there is no test set,
so no per-epoch AUROC. Its honest performance estimate is the cross-validation's, which
the model card carries. Written with core.models.export into the run folder's final
model folder (RunFolder.final_model_dir).

Resumable like a fold: a work folder (RunFolder.final_work) holds the epoch checkpoint
while training;
the export folder is complete only once its model card is written (the card is written
last), so a kill at any point leaves either no final model or a whole one, and
`bpd resume` continues from the last checkpoint.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.cohort.crop_policy import crop_policy
from core.runs.events import FINAL_FOLD_ID
from core.runs.folder import RunFolder, recorded_columns
from core.training.config import TrainConfig
from core.training.context import FoldContext
from core.training.data import TrainingData
from core.training.estimate import fold_work
from core.training.folds import Fold, fold_seed, training_images

FINAL_ID = FINAL_FOLD_ID
FINAL_SEED_REPEAT = 10**6  # a seed stream no cross-validation fold uses


def final_work(data: TrainingData, cfg: TrainConfig) -> float:
    return fold_work(cfg.replace(eval_every_epoch=False), data.n_images, 0)


def train_final_model(run: RunFolder, ctx: FoldContext, *, card: dict[str, Any]) -> Path:
    """Train on all patients and export to the run's final model folder; returns it.
    `card`: what the run knows (cohort, metrics, preprocessing, threshold, ...)."""
    from core.models.export import export_model

    data, cfg, emit = ctx.data, ctx.cfg, ctx.emit

    out = run.final_model_dir
    if run.has_final_model():
        return out
    everyone = np.arange(len(data.labels))
    fold = Fold(FINAL_SEED_REPEAT, 0, everyone, np.array([], dtype=np.int64))
    work = run.final_work()
    work.path.mkdir(parents=True, exist_ok=True)
    n_images = len(training_images(data.image_patient, everyone))
    emit("fold_started", fold_id=FINAL_ID, repeat=None, fold=None, n_train=len(everyone), n_test=0)
    seed = fold_seed(cfg.seed, FINAL_SEED_REPEAT, 0)
    trainer = ctx.replace(cfg=cfg.replace(eval_every_epoch=False)).trainer(
        fold, fold_id=FINAL_ID, checkpoints=work
    )
    trainer.train_epochs()  # no test set: only its epochs run
    model = trainer.model.to("cpu").to(memory_format=torch.contiguous_format)
    history = [{k: v for k, v in h.items() if k != "work"} for h in trainer.history]
    full_card = {
        **card,
        "init": cfg.init,
        "strategy": cfg.strategy,
        "trained_on": {"patients": len(everyone), "images": n_images, "seed": seed},
        "training": {"config": cfg.to_json(), "history": history},
    }
    export_model(model, out, card=full_card)
    shutil.rmtree(work.path, ignore_errors=True)
    emit("fold_finished", fold_id=FINAL_ID, metrics={})
    return out


def model_card(
    run: RunFolder, data: TrainingData, summary: dict[str, Any], threshold: float
) -> dict[str, Any]:
    """The model card fields a run can fill: cohort size and balance, the CV metrics,
    preprocessing and outcome definition, the threshold for new patients."""
    config = run.config()
    outcome = config.get("cohort_source", {}).get("outcome", {})
    n_pos = int(summary.get("n_positive") or 0)
    n = int(summary.get("n_patients") or 0)
    metric_keys = ("auroc", "balanced_accuracy", "f1", "sensitivity", "specificity",
                   "precision", "npv", "pooled_auroc", "ensemble_auroc", "ensemble_auroc_meaning",
                   "n_folds", "repeat_auroc")  # fmt: skip
    return {
        "run_id": run.run_id,
        "outcome": {
            "column": outcome.get("column"),
            "positive": outcome.get("positive"),
            "negative": outcome.get("negative") or "every other recorded value",
            # every recorded value not named positive counted negative (--negative-rest);
            # runs recorded before the flag meant that by an empty negative list
            "negative_rest": bool(outcome.get("negative_rest", not outcome.get("negative"))),
        },
        "cohort": {
            "n_patients": n,
            "n_positive": n_pos,
            "n_negative": n - n_pos,
            "n_images": data.n_images,
        },
        "metrics": {
            "source": "cross-validation of this recipe on this cohort (out-of-fold); "
            "the final model itself has no held-out estimate",
            **{k: summary.get(k) for k in metric_keys if k in summary},
        },
        "preprocessing": config.get("preprocess") or {},
        # whether it learnt from crop boxes, and how they were made: no boxes, no names
        "crops": crop_policy(run.crops(config)),
        "threshold": float(threshold),
        "columns": recorded_columns(config),
        "threshold_method": config.get("train", {}).get("threshold_method", "fixed"),
    }
