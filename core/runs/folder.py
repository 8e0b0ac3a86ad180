"""A run folder on disk and its per-fold parts: the one module that knows its files.

Every other module (train, resume, predict, explain, report, the app) reads and writes a
run folder through RunFolder and FoldFolder, never by file name, so the layout is
defined here only. The contract (each file, its keys, who writes it): docs/run-folder.md.

Every file is written atomically (core.atomic); checkpoints are state_dicts, RNG states
and plain containers, loadable with torch.load(weights_only=True). torch is imported
only where a checkpoint or model is read or written: the app reads a run's state and
summary through this module without loading torch.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import csv_cells, paths
from core.atomic import atomic_write, atomic_write_json
from core.errors import CheckpointError, InputError, RunError
from core.runs.events import Event, EventLog, read_events_from

if TYPE_CHECKING:
    import torch

    from core.cohort.preprocess import PreprocessConfig
    from core.runs.lock import RunLock
    from core.runs.run_config import RunConfig

STATUSES = ("running", "finished", "cancelled", "failed")

# The layout (docs/run-folder.md). Nothing outside this module spells these names.
_CONFIG = "config.json"
_COHORT = "cohort.json"
_STATE = "state.json"
_SUMMARY = "summary.json"
_PREDICTIONS = "predictions.csv"  # the run's pooled out-of-fold table, and each fold's own
_EVENTS = "events.jsonl"
_REPORT = "report.html"
_FOLDS = "folds"
_FINAL_MODEL = "final_model"  # a core.models.export folder
_FINAL_WORK = "final_work"  # the final model's resume state while it trains
_EXPLANATIONS = "explanations"  # `bpd explain` output, a cache the app's Review reads
_FOLD = "fold.json"
_MODEL = "model.pt"
_CHECKPOINT = "checkpoint.pt"
_SITES = "sites"  # a federated run: one folder per site (core.federated)
_FEDERATION = "federation.json"  # a federated run: rounds, what the server received
_DAMAGED = ".damaged"  # suffix of a checkpoint `bpd resume --restart-fold` set aside
_LOCK = "train.lock"  # one trainer per run (core.runs.lock)

PREDICTION_FIELDS = ("patient_id", "label", "prob", "logit", "repeat", "fold")


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def default_run_dir(name: str = "run", parent: str | Path | None = None) -> Path:
    """A new run folder path, PARENT/<YYYYmmdd-HHMMSS>-<name> (PARENT: the studio's runs
    folder unless given), with -2, -3, ... when one started in the same second. The CLI
    and the app name runs by this one rule."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name.strip()) or "run"
    base = Path(parent) if parent is not None else paths.runs_dir()
    candidate, n = base / f"{stamp}-{safe}", 2
    while candidate.exists():
        candidate, n = base / f"{stamp}-{safe}-{n}", n + 1
    return candidate


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
    import torch

    # straight into the temp file: no second in-memory copy of a 300 MB checkpoint
    try:
        atomic_write(path, lambda fh: torch.save(obj, fh))
    except RuntimeError as exc:  # torch's writer reports a failed write (a full disk) so
        raise _write_failure(path, exc) from None


def _write_failure(path: Path, exc: RuntimeError) -> OSError:
    """torch.save's 'PytorchStreamWriter failed writing file ...' / 'unexpected pos' as
    the OSError it stands for, naming the file (the CLI turns it into a clear message)."""
    import errno
    import shutil

    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = 0
    code = errno.ENOSPC if free < 256 * 2**20 else errno.EIO
    return OSError(code, f"{os.strerror(code)} (the write failed: {exc})", str(path))


def load_torch(path: Path, mmap: bool = False) -> Any:
    """`mmap`: tensors stay backed by the file, read as they are used (a model loads
    in milliseconds and its pages are shared; `bpd predict`)."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)


def write_csv(
    path: Path, rows: list[dict[str, Any]], fieldnames: tuple[str, ...] | list[str]
) -> None:
    # spreadsheet-safe cells, floats at full precision (core.csv_cells)
    csv_cells.write_csv(path, rows, fieldnames)


def _read_json(path: Path) -> dict[str, Any] | None:
    """The file's JSON object; None when there is no such file. A damaged file is an
    InputError naming it (every write is atomic, so only outside hands damage one)."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"not valid JSON ({exc})", file=path) from None
    if not isinstance(data, dict):
        raise InputError("not a JSON object", file=path)
    return data


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        return csv_cells.read_csv(path)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read the table ({exc})", file=path) from None


def recorded_columns(config: dict[str, Any]) -> dict[str, Any]:
    """{patient_id, image, image_pattern} a run's table was read with (user choices),
    from its config.json; {} when the run used the defaults."""
    source = config.get("cohort_source") or {}
    mapping = source.get("mapping") or {}
    out = {"patient_id": mapping.get("patient_id"), "image": mapping.get("image")}
    out["image_pattern"] = source.get("image_pattern")
    return out if any(out.values()) else {}


class FoldFolder:
    """folds/r<R>-f<F>/ (and the final model's work folder): fold.json, checkpoint.pt
    while training, then model.pt and predictions.csv."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def fold_id(self) -> str:
        return self.path.name

    def read(self) -> dict[str, Any] | None:
        """fold.json, or None before the fold started."""
        return _read_json(self.path / _FOLD)

    def write(self, info: dict[str, Any]) -> None:
        atomic_write_json(self.path / _FOLD, info)

    @property
    def finished(self) -> bool:
        info = self.read()
        return bool(info and info.get("finished"))

    # CheckpointStore protocol of core.training.loop
    def load(self) -> dict[str, Any] | None:
        path = self.path / _CHECKPOINT
        if not path.exists():
            return None
        try:
            return load_torch(path)
        except Exception:  # truncated, damaged or not ours (code in a pickle): never run it
            raise CheckpointError(self._damaged_message(path), file=path) from None

    def _damaged_message(self, path: Path) -> str:
        run_dir = self.path.parent.parent if self.path.parent.name == _FOLDS else self.path.parent
        return (
            f"the resume checkpoint of {self.fold_id} is damaged or not one BPD Studio wrote, "
            "so it is not loaded. Continue with "
            f"`bpd resume {run_dir} --restart-fold`: it moves the file aside "
            f"({_CHECKPOINT}{_DAMAGED}) and trains this fold again from its start"
        )

    def set_aside_damaged_checkpoint(self) -> Path | None:
        """Move a checkpoint that cannot be loaded out of the way (kept for a look), so
        the fold trains again from its start; the path it went to, or None."""
        path = self.path / _CHECKPOINT
        if not path.exists():
            return None
        try:
            load_torch(path)
            return None
        except Exception:
            target = path.with_name(_CHECKPOINT + _DAMAGED)
            os.replace(path, target)
            return target

    def save(self, state: dict[str, Any]) -> None:
        save_torch(self.path / _CHECKPOINT, state)

    def remove_checkpoint(self) -> None:
        """A finished fold's model replaces its resume state; it is never retrained."""
        (self.path / _CHECKPOINT).unlink(missing_ok=True)

    def save_model(self, state_dict: dict[str, torch.Tensor]) -> None:
        save_torch(self.path / _MODEL, state_dict)

    @property
    def has_model(self) -> bool:
        return (self.path / _MODEL).is_file()

    def model_state(self, mmap: bool = False) -> dict[str, torch.Tensor]:
        """The fold's final weights (a state_dict; pickled objects are refused);
        `mmap`: backed by the file (core.runs.folder.load_torch)."""
        path = self.path / _MODEL
        if not path.is_file():
            raise InputError(f"fold {self.fold_id} has no {_MODEL} (fold not finished?)", file=path)
        try:
            return load_torch(path, mmap=mmap)
        except Exception as exc:  # pickled objects are refused as well as damaged files
            raise InputError(
                f"cannot load the fold model ({type(exc).__name__})", file=path
            ) from None

    def write_predictions(self, rows: list[dict[str, Any]]) -> None:
        write_csv(self.path / _PREDICTIONS, rows, PREDICTION_FIELDS)

    def read_predictions(self) -> list[dict[str, str]]:
        """The fold's test patients: PREDICTION_FIELDS as text, in the order scored."""
        return _read_csv(self.path / _PREDICTIONS)

    @property
    def has_predictions(self) -> bool:
        return (self.path / _PREDICTIONS).is_file()


@dataclass(frozen=True)
class FinishedFold:
    """A cross-validation fold whose fold.json says finished: its record and its files."""

    folder: FoldFolder
    info: dict[str, Any]  # fold.json (docs/run-folder.md)

    @property
    def fold_id(self) -> str:
        return self.folder.fold_id

    @property
    def repeat(self) -> int:
        return int(self.info.get("repeat", 0))

    @property
    def fold(self) -> int:
        return int(self.info.get("fold", 0))

    @property
    def test_patients(self) -> list[str]:
        return [str(p) for p in self.info.get("test_patients", [])]


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
        (run.path / _FOLDS).mkdir(parents=True, exist_ok=True)
        atomic_write_json(run.path / _CONFIG, config)
        atomic_write_json(run.path / _COHORT, cohort_json)
        run.write_state("running")
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunFolder:
        """A run folder to continue writing (resume): also clears temp files of writes a
        kill interrupted. Readers use `existing`, which changes nothing."""
        run = cls(path)
        if not run.has_config:
            raise RunError(f"{run.path} is not a run folder (no {_CONFIG})")
        run.remove_stale_temp_files()
        return run

    @classmethod
    def existing(cls, path: str | Path) -> RunFolder:
        """A run folder to read (predict, explain, report, the app). Checks that it is one
        and changes nothing, so it is safe on a run that is still training."""
        run = cls(path)
        if not run.path.is_dir():
            raise InputError("is not a run folder (no such directory)", file=run.path)
        if not run.has_config:
            raise InputError(f"not a run folder (no {_CONFIG})", file=run.path)
        return run

    @staticmethod
    def looks_like_run(path: str | Path) -> bool:
        """PATH holds a run or the start of one (a job that has not yet written its
        config still has its event stream or state)."""
        path = Path(path)
        return path.is_dir() and any((path / n).exists() for n in (_EVENTS, _STATE, _CONFIG))

    @property
    def has_config(self) -> bool:
        return (self.path / _CONFIG).is_file()

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

    # --- what the run was asked to do ----------------------------------------------------
    def config(self) -> dict[str, Any]:
        """config.json: train settings, cohort source, preprocessing, versions, options."""
        data = _read_json(self.path / _CONFIG)
        if data is None:
            raise InputError(f"not a run folder (no {_CONFIG})", file=self.path)
        return data

    def run_config(self) -> RunConfig:
        """config.json as the typed RunConfig (core.runs.run_config) it was written from."""
        from core.runs.run_config import RunConfig

        config = self.config()
        if self.is_federated(config):  # several sites, each with its own cohort source
            raise InputError(
                "is a federated run (bpd federate): it has no single cohort; each site's "
                "own folder holds its run config (sites/NAME in a simulation)",
                file=self.path,
            )
        try:
            return RunConfig.from_json(config)
        except InputError as exc:
            raise InputError(exc.detail, file=exc.file or self.path / _CONFIG) from None

    def cohort_source(self, config: dict[str, Any] | None = None) -> dict[str, Any]:
        """How the run read its cohort (table, images root, mapping, outcome)."""
        return (config or self.config()).get("cohort_source") or {}

    def recorded_columns(self, config: dict[str, Any] | None = None) -> dict[str, Any]:
        return recorded_columns(config or self.config())

    def preprocess(self, config: dict[str, Any] | None = None) -> PreprocessConfig:
        """The preprocessing the run trained with (and a prediction must repeat)."""
        from core.cohort.preprocess import PreprocessConfig

        config = config or self.config()
        pre = config.get("preprocess") or {"resolution": config.get("train", {}).get("resolution")}
        return PreprocessConfig.from_json(pre)

    def crops(self, config: dict[str, Any] | None = None):
        """The crop boxes the run trained with (core.cohort.crops.CropTable; empty: whole
        images). Prediction and explanation look an image up by its content hash."""
        from core.cohort.crops import CropTable

        return CropTable.from_json((config or self.config()).get("crops"))

    def cohort(self) -> dict[str, Any]:
        """cohort.json: the cohort as training saw it (summary, exclusions, problems)."""
        return _read_json(self.path / _COHORT) or {}

    # --- how it is going -----------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """state.json {status, pid, updated, error}; {} before the run wrote one."""
        return _read_json(self.path / _STATE) or {}

    def write_state(self, status: str, error: str | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        atomic_write_json(
            self.path / _STATE,
            {"status": status, "pid": os.getpid(), "updated": now_iso(), "error": error},
        )

    def events(self) -> EventLog:
        return EventLog(self.path / _EVENTS)

    def read_events(self, offset: int = 0, max_bytes: int | None = None) -> tuple[list[Event], int]:
        """The complete events after byte `offset` and the offset to pass next time
        (core.runs.events.read_events_from; `max_bytes` caps one read)."""
        return read_events_from(self.path / _EVENTS, offset, max_bytes)

    def has_events(self) -> bool:
        """Whether the run's job has started its event stream."""
        return (self.path / _EVENTS).is_file()

    # --- results -------------------------------------------------------------------------
    def fold(self, fold_id: str) -> FoldFolder:
        return FoldFolder(self.path / _FOLDS / fold_id)

    # --- a federated run (core.federated) -----------------------------------------------
    def site(self, name: str) -> RunFolder:
        """sites/<name>/: one site's own run folder (its cohort source, its trainings'
        state and predictions). In a real federation it lives on the site's disk; a
        simulation keeps every site's folder inside the run."""
        return RunFolder(self.path / _SITES / name)

    def is_federated(self, config: dict[str, Any] | None = None) -> bool:
        """A `bpd federate simulate|serve` run: config.json has a "federated" part, the
        results are per site (summary's "federated", federation.json), not in folds/."""
        return "federated" in (config or self.config())

    def site_names(self) -> list[str]:
        sites = self.path / _SITES
        return sorted(d.name for d in sites.iterdir() if d.is_dir()) if sites.is_dir() else []

    def write_federation(self, record: dict[str, Any]) -> None:
        """What the federation's server did and received (core.federated.server_app)."""
        atomic_write_json(self.path / _FEDERATION, record)

    def federation(self) -> dict[str, Any] | None:
        return _read_json(self.path / _FEDERATION)

    def finished_folds(self) -> list[FinishedFold]:
        """The cross-validation folds recorded as finished, by (repeat, fold). A run still
        training or cancelled has fewer; a fold without its model.pt is still listed
        (its predictions count), check `folder.has_model` before loading it."""
        folds_dir = self.path / _FOLDS
        found = []
        for d in sorted(folds_dir.iterdir()) if folds_dir.is_dir() else []:
            folder = FoldFolder(d)
            info = folder.read() if d.is_dir() else None
            if info and info.get("finished"):
                found.append(FinishedFold(folder, info))
        return sorted(found, key=lambda f: (f.repeat, f.fold))

    def fold_model(self, fold_id: str, config: dict[str, Any] | None = None) -> torch.nn.Module:
        """One fold's final model (eval mode, CPU), rebuilt from its state_dict."""
        from core.models.registry import build_model

        train = (config or self.config()).get("train", {})
        state = self.fold(fold_id).model_state()
        model = build_model(train.get("init", "xrv"), dropout=float(train.get("dropout", 0.1)))
        model.load_state_dict(state, strict=True)
        return model.eval()

    def write_predictions(self, rows: list[dict[str, Any]], fieldnames: list[str]) -> None:
        """The pooled out-of-fold table (core.runs.summary.prediction_fields)."""
        write_csv(self.path / _PREDICTIONS, rows, fieldnames)

    def predictions(self) -> list[dict[str, str]] | None:
        """The pooled out-of-fold table as text (patient_id, label, prob, n_repeats,
        prob_r<R>...), or None until the cross-validation finished."""
        path = self.path / _PREDICTIONS
        return _read_csv(path) if path.is_file() else None

    @property
    def predictions_path(self) -> Path:
        """For messages about the pooled table; read it with `predictions()`."""
        return self.path / _PREDICTIONS

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_json(self.path / _SUMMARY, summary)

    def summary(self) -> dict[str, Any] | None:
        """summary.json, or None until the cross-validation finished."""
        return _read_json(self.path / _SUMMARY)

    def threshold_for_new_patients(self, config: dict[str, Any] | None = None) -> float:
        """The threshold the run recommends for new patients (summary.json), else the
        one it was trained with."""
        t = ((self.summary() or {}).get("threshold") or {}).get("for_new_patients")
        if t is not None:
            return float(t)
        return float((config or self.config()).get("train", {}).get("threshold", 0.5))

    @property
    def final_model_dir(self) -> Path:
        """Where --final-model exports (core.models.export layout)."""
        return self.path / _FINAL_MODEL

    def has_final_model(self) -> bool:
        from core.models.export import is_model_dir

        return is_model_dir(self.final_model_dir)

    def final_work(self) -> FoldFolder:
        """The final model's checkpoint while it trains (removed once exported)."""
        return FoldFolder(self.path / _FINAL_WORK)

    @property
    def report_path(self) -> Path:
        """Where `bpd report` writes by default."""
        return self.path / _REPORT

    # --- one trainer at a time (core.runs.lock) ------------------------------------------
    def lock(self) -> RunLock:
        """`with run.lock():` around training; RunBusyError if another process trains."""
        from core.runs.lock import RunLock

        return RunLock(self.path / _LOCK, self.path)

    def trainer(self) -> dict[str, Any] | None:
        """Who trains this run now ({pid, host}), None when nobody does."""
        from core.runs.lock import holder

        return holder(self.path / _LOCK)

    def set_aside_damaged_checkpoints(self) -> list[Path]:
        """`bpd resume --restart-fold`: every fold's (and the final model's) checkpoint
        that cannot be loaded is moved aside; those folds restart from their start."""
        folders = [FoldFolder(p) for p in sorted((self.path / _FOLDS).glob("*")) if p.is_dir()]
        moved = [f.set_aside_damaged_checkpoint() for f in [*folders, self.final_work()]]
        return [p for p in moved if p is not None]

    @property
    def explanations_dir(self) -> Path:
        """Where `bpd explain --all` caches the out-of-fold Grad-CAM by default
        (core.explain.cache reads it: index.csv, maps, overlays)."""
        return self.path / _EXPLANATIONS
