"""Run a study's arms one after another, on one set of prepared images.

New and resumed studies take the same path: a finished arm is left as it is, an arm
whose run folder exists continues as `bpd resume` would (finished folds read back,
an unfinished fold from its checkpoint), the rest start. Every arm gets the study's
recipe, so folds (core.training.folds.make_folds: labels, folds, repeats, seed,
scheme) and per-fold seeds are the same in every arm. An arm whose pretrained weights
are missing and cannot be downloaded is skipped with a line saying so; the others run.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.errors import InputError, WeightsMissingError
from core.runs.folder import RunFolder, now_iso, package_versions
from core.runs.run_config import RunConfig, RunOptions
from core.study.config import Arm, StudyConfig
from core.study.folder import StudyFolder

if TYPE_CHECKING:
    from core.cohort.crops import CropTable
    from core.cohort.prepare import PreparedCohort
    from core.runs.events import Event
    from core.training.runtime import CancelToken


@dataclass(frozen=True)
class ArmOutcome:
    name: str
    status: str  # "finished", "trained", "skipped"
    message: str


def weights_problem(init: str) -> str | None:
    """None when the init's weights are here (or were just downloaded), else why not."""
    from core.models.registry import weights_available
    from core.models.weights import ensure_weights

    if weights_available(init):
        return None
    try:
        ensure_weights(init)
    except WeightsMissingError as exc:
        return str(exc)
    return None


def arm_run_config(config: StudyConfig, arm: Arm, crops: CropTable | None = None) -> RunConfig:
    """The RunConfig an arm's run folder starts from: the arm's recipe, the study's
    cohort, the crop boxes the study prepared its images with."""
    options = RunOptions(final_model=False, report=config.report)
    return RunConfig(arm.train, config.cohort, options, crops=crops)


def run_study(
    study: StudyFolder,
    prepared: PreparedCohort,
    *,
    cancel: CancelToken,
    crops: CropTable | None = None,
    say: Callable[[str], None],
    on_event: Callable[[Arm], Callable[[Event], None] | None] | None = None,
) -> list[ArmOutcome]:
    """Train every arm not yet finished; the study report after each arm. Cancelled
    (core.errors) propagates with the arm's folder resumable."""
    from core.study.report import write_study_report

    config = study.config()
    cohort = prepared.cohort
    if not cohort.is_usable(min_per_class=config.train.cv_folds):
        raise InputError(
            f"{config.train.cv_folds}-fold cross-validation needs at least "
            f"{config.train.cv_folds} usable patients of each outcome; the cohort has "
            f"{cohort.n_positive} positive and {cohort.n_negative} negative (run "
            "`bpd cohort check` to see what was excluded)",
            file=config.cohort.table,
        )
    data = None
    missing: dict[str, str | None] = {}
    outcomes = []
    arms = config.arms()
    for i, arm in enumerate(arms, 1):
        where = f"arm {i}/{len(arms)} {arm.name}"
        status = study.arm_status(arm)
        if status == "finished":
            outcomes.append(ArmOutcome(arm.name, "finished", f"{where}: finished earlier"))
            say(outcomes[-1].message)
            continue
        if arm.init not in missing:
            missing[arm.init] = weights_problem(arm.init)
        if missing[arm.init]:
            reason = str(missing[arm.init])  # names the file, where it goes, how to import it
            study.set_skipped(arm.name, reason)
            outcomes.append(ArmOutcome(arm.name, "skipped", f"{where}: SKIPPED, {reason}"))
            say(outcomes[-1].message)
            continue
        study.set_skipped(arm.name, None)
        if data is None:
            from core.training.data import TrainingData

            data = TrainingData.from_prepared(prepared)
        resumed = status == "unfinished"
        say(f"{where}: {'resuming' if resumed else 'training'} ({arm.title})")
        start = arm_run_config(config, arm, crops)
        run = _train_arm(study, arm, start, prepared, data, cancel, on_event)
        if run.run_config().options.report:
            _arm_report(run, say)
        outcomes.append(ArmOutcome(arm.name, "trained", f"{where}: finished"))
        write_study_report(study)
    return outcomes


def _arm_report(run: RunFolder, say: Callable[[str], None]) -> None:
    from core.evaluation.report import write_report

    try:
        write_report(run.path)
    except Exception as exc:  # a report must never cost a finished arm
        say(f"warning: {run.path.name}: report.html could not be written: {exc}")


def _train_arm(study, arm, start, prepared, data, cancel, on_event) -> RunFolder:
    from core.models.registry import create_model
    from core.runs.runner import run_cv

    run = study.arm_run(arm)
    if run.path.exists() and not run.has_config:
        _remove_unstarted(run)  # killed between making the folder and writing config.json
    if run.has_config:
        with RunFolder.existing(run.path).lock():
            run = RunFolder.open(run.path)
            run_config = run.run_config()
            _train(run, run_config, prepared, data, cancel, on_event, arm, create_model, run_cv)
    else:
        run_config = start.replace(versions=package_versions(), created=now_iso())
        run = RunFolder.create(run.path, run_config.to_json(), prepared.cohort.to_json())
        with run.lock():
            _train(run, run_config, prepared, data, cancel, on_event, arm, create_model, run_cv)
    return run


def _train(run, run_config, prepared, data, cancel, on_event, arm, create_model, run_cv) -> None:
    cfg = run_config.train
    run_cv(
        run,
        data,
        cfg,
        lambda seed: create_model(cfg.init, dropout=cfg.dropout, seed=seed),
        cancel=cancel,
        on_event=on_event(arm) if on_event else None,
        patients=prepared.cohort.patients,
    )


def _remove_unstarted(run: RunFolder) -> None:
    """An arm folder holding only empty folders (no file at all) never started."""
    if any(p.is_file() for p in run.path.rglob("*")):
        raise InputError(
            "holds files but no config.json: not an arm this study started; move it away",
            file=run.path,
        )
    shutil.rmtree(run.path)
