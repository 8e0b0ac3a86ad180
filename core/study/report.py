"""The study's report.html: its arms as core.evaluation.study_report reads them."""

from __future__ import annotations

from pathlib import Path

from core.evaluation.study_report import StudyArm
from core.evaluation.study_report import write_study_report as _write
from core.study.folder import StudyFolder


def study_arms(study: StudyFolder) -> list[StudyArm]:
    config = study.config()
    skipped = study.skipped()
    out = []
    for arm in config.arms():
        status = study.arm_status(arm)
        run_dir = study.arm_path(arm) if status in ("finished", "unfinished") else None
        out.append(StudyArm(arm.name, arm.title, status, run_dir, skipped.get(arm.name, "")))
    return out


def write_study_report(study: StudyFolder, html_path: str | Path | None = None) -> Path:
    config = study.config()
    notes = [
        f"Recipe: preset {config.preset}, {config.train.cv_folds}-fold cross-validation x "
        f"{config.train.cv_repeats} repeat(s) ({config.train.cv_scheme} folds), seed "
        f"{config.train.seed}, {config.train.resolution} px; arms without the linear probe "
        f"fine-tune for {config.fine_tune_epochs_without_probe} epochs. Each arm's own "
        "report.html is in its run folder (arms/<arm>/).",
    ]
    target = Path(html_path) if html_path else study.report_path
    return _write(target, study.path.name, study_arms(study), study.record(), notes)
