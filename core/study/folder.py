"""A study folder on disk: the one module that knows its files.

    study.json     the StudyConfig (core.study.config) with `created` and `versions`
    arms/<arm>/    one run folder per arm (docs/run-folder.md), e.g. arms/xrv-full
    skipped.json   arms the last attempt skipped and why (pretrained weights missing)
    report.html    the study report (core.evaluation.study_report)
    study.lock     one process runs the study at a time (core.runs.lock)

An arm is finished when its run folder says so; `bpd study resume` skips those,
resumes an unfinished arm from its checkpoints and starts the rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.atomic import atomic_write_json
from core.errors import InputError, RunError
from core.runs.folder import RunFolder, now_iso, package_versions
from core.runs.lock import RunLock
from core.study.config import Arm, StudyConfig

_STUDY = "study.json"
_ARMS = "arms"
_SKIPPED = "skipped.json"
_REPORT = "report.html"
_LOCK = "study.lock"


def _read_json(path: Path) -> dict[str, Any] | None:
    import json

    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"not valid JSON ({exc})", file=path) from None
    if not isinstance(data, dict):
        raise InputError("not a JSON object", file=path)
    return data


class StudyFolder:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def create(cls, path: str | Path, config: StudyConfig) -> StudyFolder:
        study = cls(path)
        if study.path.exists() and any(study.path.iterdir()):
            raise RunError(
                f"{study.path} already exists and is not empty; choose another --out "
                f"or continue it with `bpd study resume {study.path}`"
            )
        (study.path / _ARMS).mkdir(parents=True, exist_ok=True)
        record = {**config.to_json(), "created": now_iso(), "versions": package_versions()}
        atomic_write_json(study.path / _STUDY, record)
        return study

    @classmethod
    def existing(cls, path: str | Path) -> StudyFolder:
        study = cls(path)
        if not study.path.is_dir():
            raise InputError("is not a study folder (no such directory)", file=study.path)
        if not cls.looks_like_study(study.path):
            raise InputError(f"not a study folder (no {_STUDY})", file=study.path)
        return study

    @staticmethod
    def looks_like_study(path: str | Path) -> bool:
        return (Path(path) / _STUDY).is_file()

    def record(self) -> dict[str, Any]:
        """study.json: the config, `created`, `versions`."""
        data = _read_json(self.path / _STUDY)
        if data is None:
            raise InputError(f"not a study folder (no {_STUDY})", file=self.path)
        return data

    def config(self) -> StudyConfig:
        try:
            return StudyConfig.from_json(self.record())
        except InputError as exc:
            raise InputError(exc.detail, file=self.path / _STUDY) from None

    # --- the arms ------------------------------------------------------------------------
    def arm_path(self, arm: Arm | str) -> Path:
        return self.path / _ARMS / (arm if isinstance(arm, str) else arm.name)

    def arm_run(self, arm: Arm | str) -> RunFolder:
        return RunFolder(self.arm_path(arm))

    def arm_status(self, arm: Arm | str) -> str:
        """'finished', 'skipped', 'unfinished' (started, resumable) or 'not started'."""
        name = arm if isinstance(arm, str) else arm.name
        run = self.arm_run(name)
        if run.has_config:
            if run.state().get("status") == "finished" and run.summary() is not None:
                return "finished"
            return "unfinished"
        return "skipped" if name in self.skipped() else "not started"

    def arm_statuses(self) -> dict[str, str]:
        """{arm name: arm_status} in the study's order (what the app lists)."""
        return {arm.name: self.arm_status(arm) for arm in self.config().arms()}

    def running_arm(self) -> str | None:
        """The arm a process is training now (its run folder's lock is held), or None:
        the run folder whose events.jsonl a follower (the app) should read."""
        for arm in self.config().arms():
            run = self.arm_run(arm)
            if run.has_config and run.trainer() is not None:
                return arm.name
        return None

    def skipped(self) -> dict[str, str]:
        """{arm: why} for the arms the last attempt skipped."""
        return {str(k): str(v) for k, v in (_read_json(self.path / _SKIPPED) or {}).items()}

    def set_skipped(self, arm: str, reason: str | None) -> None:
        """Record (or, with None, clear) why an arm was skipped."""
        skipped = self.skipped()
        if reason is None:
            if arm not in skipped:
                return
            skipped.pop(arm)
        else:
            skipped[arm] = reason
        atomic_write_json(self.path / _SKIPPED, skipped)

    @property
    def report_path(self) -> Path:
        return self.path / _REPORT

    def lock(self) -> RunLock:
        """`with study.lock():` while arms train; RunBusyError if another process does."""
        return RunLock(self.path / _LOCK, self.path)
