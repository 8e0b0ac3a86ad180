"""Cross-validation as a job: folds -> FoldTrainer -> fold files -> run summary.

`run_cv` works the same for a new run and a resumed one: finished folds are read back
from disk, an unfinished fold continues from its checkpoint.
Cancellation (CancelToken) stops after the current batch, marks the run "cancelled"
and raises core.errors.Cancelled; the folder stays resumable.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

import torch

from core.errors import Cancelled, RunError
from core.runs.events import Event
from core.runs.folder import FoldFolder, RunFolder
from core.runs.summary import pooled_predictions, prediction_fields, run_summary
from core.training.config import TrainConfig
from core.training.context import FoldContext, ModelFactory
from core.training.data import TrainingData
from core.training.estimate import fold_work
from core.training.folds import Fold, make_folds, scored_images, training_images
from core.training.loop import FoldResult
from core.training.runtime import CancelToken, Progress, Runtime, resolve_runtime

log = logging.getLogger(__name__)


def run_cv(
    run: RunFolder,
    data: TrainingData,
    cfg: TrainConfig,
    model_factory: ModelFactory,
    *,
    cancel: CancelToken | None = None,
    on_event: Callable[[Event], None] | None = None,
    runtime: Runtime | None = None,
    patients: list | None = None,
    final_model: bool = False,
    workers: int = 1,
) -> dict[str, Any]:
    """Train and score every fold; write the pooled predictions and the summary. With
    the cohort's `patients` (core.cohort.model.Patient), the summary also gets the
    clinical baselines on the same folds. `final_model`: then train one model on every
    patient and export it into the run folder (core.runs.final_model).
    `workers`: folds trained at once in worker processes (core.runs.workers; 0: the
    default rule of core.training.parallel); the results are those of one worker."""
    log_ = run.events()

    def emit(type_: str, **fields: Any) -> Event:
        event = log_.emit(type_, **fields)
        if on_event:
            on_event(event)
        return event

    run.write_state("running")
    try:
        ctx = FoldContext(
            data,
            cfg,
            runtime or resolve_runtime(cfg),
            model_factory,
            emit,
            cancel or CancelToken(),
            Progress(0.0),
        )
        summary = _run(run, ctx, patients, final_model, workers)
    except Cancelled as exc:
        run.write_state("cancelled")
        emit("run_cancelled", message=f"{exc}; continue with `bpd resume {run.path}`")
        raise
    except BaseException as exc:
        run.write_state("failed", error=f"{type(exc).__name__}: {exc}")
        emit("run_failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        raise
    run.write_state("finished")
    emit("run_finished", summary=summary)
    return summary


def _run(
    run: RunFolder, ctx: FoldContext, patients: list | None, final_model: bool, workers: int
) -> dict:
    from core.runs import final_model as fm
    from core.training.parallel import resolve_workers, threads_per_worker

    data, cfg, emit = ctx.data, ctx.cfg, ctx.emit
    torch.use_deterministic_algorithms(ctx.runtime.device.type == "cpu", warn_only=True)
    folds = make_folds(data.labels, cfg.cv_folds, cfg.cv_repeats, cfg.seed, cfg.cv_scheme)
    work = {f.fold_id: _work(data, cfg, f) for f in folds}
    done = sum(work[f.fold_id] for f in folds if run.fold(f.fold_id).finished)
    final_work = fm.final_work(data, cfg) if final_model else 0.0
    if final_model and run.has_final_model():
        done += final_work
    progress = Progress(sum(work.values()) + final_work, done)
    ctx = ctx.replace(progress=progress)
    pending = [f for f in folds if not run.fold(f.fold_id).finished]
    data_mb = data.pixels.nbytes / 2**20
    device = ctx.runtime.device.type
    workers = resolve_workers(workers, cfg, len(pending), device_type=device, data_mb=data_mb)
    threads = threads_per_worker(workers, asked=cfg.num_threads)
    emit(
        "run_started",
        run_id=run.run_id,
        run_dir=str(run.path),
        n_folds_total=len(folds),
        n_patients=len(data.labels),
        n_positive=int(data.labels.sum()),
        config=cfg.to_json(),
        runtime={**ctx.runtime.to_json(), "workers": workers,
                 "threads": threads if workers > 1 else torch.get_num_threads()},
        resumed=done > 0 or any(run.fold(f.fold_id).read() for f in folds),
    )
    if workers > 1:
        from core.runs.workers import train_folds_in_workers

        train_folds_in_workers(run, ctx, pending, work, workers, threads)
    rows: list[dict[str, Any]] = []
    fold_results: list[dict[str, Any]] = []
    for fold in folds:
        folder = run.fold(fold.fold_id)
        info = folder.read()
        if info and info.get("finished"):
            _check_same_patients(info, fold, data)
            rows.extend(folder.read_predictions())
            fold_results.append(info)
            continue
        rows.extend(train_fold(run, ctx, fold))
        fold_results.append(folder.read())
        progress.done = sum(work[f["fold_id"]] for f in fold_results)
        emit("progress", **progress.fields())
    pooled = pooled_predictions(rows, cfg.cv_repeats)
    run.write_predictions(pooled, prediction_fields(cfg.cv_repeats))
    summary = run_summary(
        fold_results, pooled, len(data.labels), int(data.labels.sum()), cfg.cv_scheme
    )
    summary["threshold"] = threshold_summary(cfg, fold_results, pooled)
    if patients is not None:
        summary["baselines"] = _baselines(patients, fold_results, emit)
    run.write_summary(summary)
    if final_model:
        card = fm.model_card(run, data, summary, summary["threshold"]["for_new_patients"])
        fm.train_final_model(run, ctx, card=card)
        emit("progress", **progress.fields())
    return summary


def train_fold(run: RunFolder, ctx: FoldContext, fold: Fold) -> list[dict[str, Any]]:
    """Train and score one unfinished fold (from its checkpoint if it has one) and write
    its files; returns its prediction rows. The same in the runner's process and in a
    worker process (core.runs.workers): `ctx.emit` is where its events go."""
    data, cfg, emit = ctx.data, ctx.cfg, ctx.emit
    folder = run.fold(fold.fold_id)
    info = folder.read()
    if info:
        _check_same_patients(info, fold, data)
    previous_choice = (info or {}).get("threshold_choice")
    info = _fold_info(fold, data, cfg)
    folder.write(info)
    emit(
        "fold_started",
        fold_id=fold.fold_id,
        repeat=fold.repeat,
        fold=fold.fold,
        n_train=len(fold.train),
        n_test=len(fold.test),
    )
    choice = previous_choice or _threshold_choice(ctx, fold)
    info = {**info, "threshold": choice["value"], "threshold_choice": choice}
    folder.write(info)  # a resumed fold keeps its inner-CV threshold
    fold_ctx = ctx.replace(cfg=cfg.replace(threshold=choice["value"]))
    result = fold_ctx.trainer(fold, checkpoints=folder).run()
    fold_rows = _write_fold(folder, info, result, data, cfg)
    emit("fold_finished", fold_id=fold.fold_id, metrics=_metric_fields(result.metrics))
    return fold_rows


def _threshold_choice(ctx: FoldContext, fold: Fold) -> dict:
    if ctx.cfg.threshold_method != "youden":
        return {"method": "fixed", "value": float(ctx.cfg.threshold)}
    from core.runs.inner_threshold import inner_cv_threshold

    return inner_cv_threshold(ctx, fold)


def threshold_summary(
    cfg: TrainConfig, fold_results: list[dict[str, Any]], pooled: list[dict[str, Any]]
) -> dict[str, Any]:
    """How classes were assigned: the method, the per-fold thresholds, and the one to use
    on new patients (fixed: the same; youden: Youden's J on the pooled out-of-fold
    predictions, which no fold model trained on)."""
    import numpy as np

    from core.scoring.threshold import youden_threshold

    values = [float(f.get("threshold", cfg.threshold)) for f in fold_results]
    new = float(cfg.threshold)
    if cfg.threshold_method == "youden" and pooled:
        labels = [int(r["label"]) for r in pooled]
        if 0 < sum(labels) < len(labels):
            new = youden_threshold(labels, [float(r["prob"]) for r in pooled])
    return {
        "method": cfg.threshold_method,
        "per_fold": {
            "mean": float(np.mean(values)) if values else None,
            "sd": float(np.std(values, ddof=1)) if len(values) > 1 else None,
            "min": min(values) if values else None,
            "max": max(values) if values else None,
        },
        "for_new_patients": new,
    }


def _baselines(patients: list, fold_results: list[dict[str, Any]], emit) -> dict[str, Any]:
    from core.scoring.baselines import baselines_for_folds

    try:
        return baselines_for_folds(patients, fold_results)
    except Exception as exc:  # a baseline must never cost the user a finished training run
        log.exception("clinical baselines failed")
        emit("warning", message=f"clinical baselines could not be computed: {exc}")
        return {"error": f"{type(exc).__name__}: {exc}"}


def _work(data: TrainingData, cfg: TrainConfig, fold: Fold) -> float:
    n_train = len(training_images(data.image_patient, fold.train))
    n_test = len(scored_images(data.image_patient, data.image_rank, fold.test, cfg.test_images))
    total = fold_work(cfg, n_train, n_test)
    if cfg.threshold_method == "youden":
        from core.runs.inner_threshold import inner_work

        total += inner_work(data, fold, cfg)
    return total


def _fold_info(fold: Fold, data: TrainingData, cfg: TrainConfig) -> dict[str, Any]:
    return {
        "fold_id": fold.fold_id,
        "repeat": fold.repeat,
        "fold": fold.fold,
        "train_patients": [data.patient_ids[i] for i in fold.train],
        "test_patients": [data.patient_ids[i] for i in fold.test],
        "metrics": {},
        "threshold": cfg.threshold,
        "history": [],
        "finished": False,
    }


def _check_same_patients(info: dict[str, Any], fold: Fold, data: TrainingData) -> None:
    expected = [data.patient_ids[i] for i in fold.test]
    if info.get("test_patients") != expected:
        raise RunError(
            f"fold {fold.fold_id}: the cohort no longer gives the same test patients as when "
            "the run started (table, images or settings changed); start a new run instead"
        )


def _metric_fields(metrics: dict[str, float]) -> dict[str, float | None]:
    from core.runs.summary import _clean_tree

    return _clean_tree(dict(metrics))


def _write_fold(
    folder: FoldFolder,
    info: dict[str, Any],
    result: FoldResult,
    data: TrainingData,
    cfg: TrainConfig,
) -> list[dict[str, Any]]:
    rows = [
        {
            "patient_id": data.patient_ids[int(p)],
            "label": int(label),
            "prob": float(prob),
            "logit": float(logit),
            "repeat": result.fold.repeat,
            "fold": result.fold.fold,
        }
        for p, label, prob, logit in zip(
            result.patient_index, result.labels, result.probs, result.logits, strict=True
        )
    ]
    folder.save_model(result.model_state)
    folder.write_predictions(rows)
    history = [{k: v for k, v in h.items() if k != "work"} for h in result.history]
    info = {**info, "metrics": _metric_fields(result.metrics), "history": history, "finished": True}
    folder.write(info)
    folder.remove_checkpoint()
    if not folder.finished:
        raise RunError(f"could not record fold {result.fold.fold_id} as finished")
    return rows
