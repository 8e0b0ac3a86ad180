"""A fold's Youden threshold from an inner cross-validation over its training patients.

Youden's J must be maximised on scores the model did not train on, and never on the
test fold. The only honest source of such scores for a fine-tuned backbone is to train
again: the outer fold's training patients are split into `threshold_inner_folds`
stratified inner folds, the same recipe trains one model per inner fold (no
per-epoch evaluation, no checkpoints), and each training patient is scored by the inner
model that did not see them. The test patients of the outer fold are not passed to
any of this (checked by id in core.scoring.threshold.fold_threshold).

Cheaper shortcuts were rejected: an inner linear probe on the fold's final backbone
scores patients that backbone was fine-tuned on (not out-of-fold), and scores from the
other outer folds come from models trained on this fold's test patients.

Cost: each inner model trains on (k-1)/k of the fold's training patients, so with
k = 3 the run costs about 1 + 3 * 2/3 = 3 times a run with the fixed threshold.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.scoring.metrics import auroc
from core.scoring.threshold import fold_threshold
from core.training.config import TrainConfig
from core.training.context import FoldContext
from core.training.data import TrainingData
from core.training.estimate import fold_work
from core.training.folds import Fold, make_folds, repeat_seed

INNER_FOLD_OFFSET = 1000  # inner models get fold numbers (and seeds) no outer fold has


def _inner_folds(data: TrainingData, outer: Fold, cfg: TrainConfig) -> list[Fold]:
    train = np.asarray(outer.train)
    seed = repeat_seed(cfg.seed, INNER_FOLD_OFFSET * (outer.repeat + 1) + outer.fold)
    split = make_folds(data.labels[train], cfg.threshold_inner_folds, 1, seed)
    base = INNER_FOLD_OFFSET * (outer.fold + 1)
    return [
        Fold(outer.repeat, base + i, train[f.train], train[f.test]) for i, f in enumerate(split)
    ]


def inner_work(data: TrainingData, outer: Fold, cfg: TrainConfig) -> float:
    """Work units of the inner cross-validation (for progress and ETA)."""
    from core.training.folds import scored_images, training_images

    inner_cfg = cfg.replace(eval_every_epoch=False)
    total = 0.0
    for f in _inner_folds(data, outer, cfg):
        n_train = len(training_images(data.image_patient, f.train))
        n_test = len(scored_images(data.image_patient, data.image_rank, f.test, cfg.test_images))
        total += fold_work(inner_cfg, n_train, n_test)
    return total


def inner_cv_threshold(ctx: FoldContext, outer: Fold) -> dict[str, Any]:
    """{"method": "youden", "value", "inner_folds", "n_scored", "inner_auroc"}: the
    threshold for `outer`, chosen on its training patients' inner out-of-fold scores."""
    data, cfg = ctx.data, ctx.cfg

    def forward(type_: str, **fields: Any) -> Any:
        # Only progress: inner models are not folds of the run (no plots, no fold lines).
        if type_ == "progress":
            return ctx.emit(type_, **fields)
        return None

    inner = ctx.replace(cfg=cfg.replace(eval_every_epoch=False), emit=forward)
    ids: list[str] = []
    labels: list[int] = []
    probs: list[float] = []
    for f in _inner_folds(data, outer, cfg):
        result = inner.trainer(f).run()
        ids.extend(data.patient_ids[int(p)] for p in result.patient_index)
        labels.extend(int(y) for y in result.labels)
        probs.extend(float(p) for p in result.probs)
    test_ids = [data.patient_ids[int(p)] for p in outer.test]
    value = fold_threshold("youden", labels, probs, train_ids=ids, test_ids=test_ids)
    inner_auc = auroc(np.asarray(labels), np.asarray(probs))
    return {
        "method": "youden",
        "value": value,
        "inner_folds": cfg.threshold_inner_folds,
        "n_scored": len(ids),
        "inner_auroc": None if np.isnan(inner_auc) else float(inner_auc),
    }
