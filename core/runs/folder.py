"""A run folder on disk (layout: see CONTRACTS / ARCHITECTURE) and its per-fold parts.

Every file is written atomically (core.atomic); checkpoints are state_dicts, RNG states
and plain containers, loadable with torch.load(weights_only=True).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import platform
from pathlib import Path
from typing import Any

import torch

from core import paths
from core.atomic import atomic_write, atomic_write_json, atomic_write_text
from core.errors import RunError
from core.runs.events import EventLog

STATUSES = ("running", "finished", "cancelled", "failed")


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def default_run_dir(name: str = "run") -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name) or "run"
    return paths.runs_dir() / f"{stamp}-{safe}"


def package_versions() -> dict[str, str]:
    import importlib.metadata as md

    from core import __version__

    out = {"python": platform.python_version(), "bpd": __version__}
    for pkg in ("torch", "torchvision", "torchxrayvision", "numpy", "scikit-learn"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def save_torch(path: Path, obj: Any) -> None:
    # straight into the temp file: no second in-memory copy of a 300 MB checkpoint
    atomic_write(path, lambda fh: torch.save(obj, fh))


def load_torch(path: Path) -> Any:
    return torch.load(path, map_location="cpu", weights_only=True)


class FoldFolder:
    """folds/r<R>-f<F>/: fold.json, checkpoint.pt, model.pt, predictions.csv."""

    def __init__(self, path: Path):
        self.path = path

    @property
    def fold_json(self) -> Path:
        return self.path / "fold.json"

    def read(self) -> dict[str, Any] | None:
        if not self.fold_json.exists():
            return None
        return json.loads(self.fold_json.read_text(encoding="utf-8"))

    def write(self, info: dict[str, Any]) -> None:
        atomic_write_json(self.fold_json, info)

    @property
    def finished(self) -> bool:
        info = self.read()
        return bool(info and info.get("finished"))

    # CheckpointStore protocol of core.training.loop
    def load(self) -> dict[str, Any] | None:
        path = self.path / "checkpoint.pt"
        return load_torch(path) if path.exists() else None

    def save(self, state: dict[str, Any]) -> None:
        save_torch(self.path / "checkpoint.pt", state)

    def save_model(self, state_dict: dict[str, torch.Tensor]) -> None:
        save_torch(self.path / "model.pt", state_dict)

    def write_predictions(self, rows: list[dict[str, Any]]) -> None:
        write_csv(self.path / "predictions.csv", rows, PREDICTION_FIELDS)

    def read_predictions(self) -> list[dict[str, str]]:
        with open(self.path / "predictions.csv", encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh))


PREDICTION_FIELDS = ("patient_id", "label", "prob", "logit", "repeat", "fold")


def write_csv(
    path: Path, rows: list[dict[str, Any]], fieldnames: tuple[str, ...] | list[str]
) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fieldnames), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(v) for k, v in row.items()})
    atomic_write_text(path, buf.getvalue())


def _csv_value(v: Any) -> Any:
    if isinstance(v, float):
        return repr(v)  # full precision: resumed and uninterrupted runs compare exactly
    return v


class RunFolder:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def create(
        cls, path: str | Path, config: dict[str, Any], cohort_json: dict[str, Any]
    ) -> RunFolder:
        run = cls(path)
        if run.path.exists() and any(run.path.iterdir()):
            raise RunError(
                f"{run.path} already exists and is not empty; choose another --out "
                f"or continue it with `bpd resume {run.path}`"
            )
        (run.path / "folds").mkdir(parents=True, exist_ok=True)
        atomic_write_json(run.path / "config.json", config)
        atomic_write_json(run.path / "cohort.json", cohort_json)
        run.write_state("running")
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunFolder:
        run = cls(path)
        if not (run.path / "config.json").is_file():
            raise RunError(f"{run.path} is not a run folder (no config.json)")
        run.remove_stale_temp_files()
        return run

    def remove_stale_temp_files(self) -> list[Path]:
        """Temp files of writes a kill interrupted (core.atomic names them .NAME.*.tmp);
        the real files are intact, the temps are garbage."""
        stale = [p for p in self.path.rglob(".*.tmp") if p.is_file()]
        for p in stale:
            p.unlink(missing_ok=True)
        return stale

    @property
    def run_id(self) -> str:
        return self.path.name

    def config(self) -> dict[str, Any]:
        return json.loads((self.path / "config.json").read_text(encoding="utf-8"))

    def state(self) -> dict[str, Any]:
        path = self.path / "state.json"
        if not path.exists():
            return {}
        return json.loads(path.read_text(encoding="utf-8"))

    def write_state(self, status: str, error: str | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        atomic_write_json(
            self.path / "state.json",
            {"status": status, "pid": os.getpid(), "updated": now_iso(), "error": error},
        )

    def events(self) -> EventLog:
        return EventLog(self.path / "events.jsonl")

    def fold(self, fold_id: str) -> FoldFolder:
        return FoldFolder(self.path / "folds" / fold_id)

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_json(self.path / "summary.json", summary)

    def summary(self) -> dict[str, Any] | None:
        path = self.path / "summary.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
