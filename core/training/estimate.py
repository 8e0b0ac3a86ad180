"""One work model for progress, ETA and duration estimates (torch-free).

A unit of work is one image's forward pass; a backward pass counts BACKWARD_COST more.
The runner sums `fold_work` over its folds for progress and ETA (core.runs.runner),
`bpd bench train` reports work units per second, and the app estimates a run's length
from a cohort's size with `run_work` and that measured speed, so all three agree.
"""

from __future__ import annotations

from core.training.config import TrainConfig
from core.training.plan import fold_plan, steps_per_epoch

BACKWARD_COST = 2.0  # work units of a backward pass relative to one forward


def fold_work(cfg: TrainConfig, n_train: int, n_test: int) -> float:
    """Work units of one fold: image forward passes, a backward pass counting
    BACKWARD_COST; cached-probe epochs cost ~nothing, their one feature pass (BN
    re-estimation on training images + every image) is counted instead."""
    n_samples = steps_per_epoch(n_train, cfg.batch_size) * cfg.batch_size
    cached = cfg.uses_feature_cache
    plans = fold_plan(cfg)
    total = 2.0 * n_train + n_test if cached else 0.0
    for plan in plans:
        if plan.stage == "probe" and cached:
            continue
        last = plan.epoch == len(plans) - 1
        evals = n_test if (cfg.eval_every_epoch or last) else 0
        total += n_samples * (1.0 if plan.head_only else 1.0 + BACKWARD_COST) + evals
    return total


def cv_split(n: int, k: int) -> tuple[int, int]:
    """(training, test) share of n items in one of k folds (the typical fold)."""
    test = round(n / k)
    return n - test, test


def run_work(cfg: TrainConfig, n_patients: int, n_images: int, final_model: bool = False) -> float:
    """Work units of a whole run on a cohort of this size, before its folds exist (the
    runner counts each fold's exact images; this uses the typical fold)."""
    n_train, _ = cv_split(n_images, cfg.cv_folds)
    scored = n_patients if cfg.test_images == "first" else n_images
    _, n_test = cv_split(scored, cfg.cv_folds)
    per_fold = fold_work(cfg, n_train, n_test)
    if cfg.threshold_method == "youden":  # inner CV on each fold's training patients
        inner = cfg.replace(eval_every_epoch=False)
        k = cfg.threshold_inner_folds
        in_train, _ = cv_split(n_train, k)
        _, in_test = cv_split(round(scored * n_train / max(n_images, 1)), k)
        per_fold += k * fold_work(inner, in_train, in_test)
    total = per_fold * cfg.cv_folds * cfg.cv_repeats
    if final_model:
        total += fold_work(cfg.replace(eval_every_epoch=False), n_images, 0)
    return total


def work_units_per_s(images_per_s: float) -> float:
    """`bpd bench train` times a full training step (forward and backward of the
    trainable blocks): each image it trains on is 1 + BACKWARD_COST units."""
    return images_per_s * (1.0 + BACKWARD_COST)


def estimate_seconds(
    cfg: TrainConfig,
    n_patients: int,
    n_images: int,
    units_per_s: float,
    final_model: bool = False,
    workers: int = 1,
) -> float:
    """A run's duration from the measured work units per second of one worker
    (`bpd bench train` at that worker's threads). With `workers` folds at once
    (core.training.parallel) the folds take ceil(folds / workers) rounds of one
    typical fold each; the final model trains after them, alone."""
    speed = max(units_per_s, 1e-9)
    n_folds = cfg.cv_folds * cfg.cv_repeats
    cv = run_work(cfg, n_patients, n_images)
    final = run_work(cfg, n_patients, n_images, final_model) - cv
    rounds = -(-n_folds // max(1, workers))
    return (cv / n_folds * rounds + final) / speed
