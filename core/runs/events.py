"""The event stream every job emits: one JSON object per line in events.jsonl.

The CLI prints these as progress; the app plots them. Both read them only through this
module, so it is the contract between `core` and every client (docs/run-folder.md,
"Events"). Each event type is a frozen dataclass below; every event has

    type     the event type (one of EVENT_TYPES)
    time     seconds since the epoch (float)
    seq      position in the run's stream (0, 1, 2, ...)
    schema   SCHEMA_VERSION of the writer (lines without it are version 1)

and its own fields (JSON-serialisable, no numpy types). Reading is tolerant, so an
older app can follow a newer run: unknown fields are ignored, an unknown type becomes an
`UnknownEvent`, and a field that a newer schema added and an older writer left out takes
its default. A line that cannot be parsed (cut short by a kill) is skipped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

log = logging.getLogger(__name__)

# 1: the format since the first release (the fields below; "schema" added to each line).
SCHEMA_VERSION = 1

# fold_id of the --final-model phase (every patient, no test set): not a CV fold.
FINAL_FOLD_ID = "final"


@dataclass(frozen=True, kw_only=True)
class Event:
    type: ClassVar[str] = ""
    time: float = 0.0
    seq: int = -1
    schema: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        fields_ = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {"type": self.type, **fields_}


@dataclass(frozen=True, kw_only=True)
class RunStarted(Event):
    """A run starts or resumes. `config`: the TrainConfig JSON; `runtime`: device,
    precision, channels_last; `resumed`: some of the run was done before."""

    type: ClassVar[str] = "run_started"
    run_id: str
    run_dir: str
    n_folds_total: int
    n_patients: int
    n_positive: int
    config: dict[str, Any] = field(default_factory=dict)
    runtime: dict[str, Any] = field(default_factory=dict)
    resumed: bool = False


@dataclass(frozen=True, kw_only=True)
class FoldStarted(Event):
    """fold_id "r<repeat>-f<fold>"; FINAL_FOLD_ID for the model on every patient after
    the CV (repeat and fold None, n_test 0, no test AUROC, empty metrics)."""

    type: ClassVar[str] = "fold_started"
    fold_id: str
    repeat: int | None
    fold: int | None
    n_train: int
    n_test: int


@dataclass(frozen=True, kw_only=True)
class EpochStarted(Event):
    """epoch: 0-based over the whole fold (probe + fine-tuning); phase: "probe", "head",
    "layer4", "layer3", "layer2" or "full" (core.training.schedule)."""

    type: ClassVar[str] = "epoch_started"
    fold_id: str
    epoch: int
    n_epochs: int
    phase: str


@dataclass(frozen=True, kw_only=True)
class BatchLoss(Event):
    """A training batch's loss (throttled: at most about one a second)."""

    type: ClassVar[str] = "batch"
    fold_id: str
    epoch: int
    batch: int
    n_batches: int
    loss: float


@dataclass(frozen=True, kw_only=True)
class EpochFinished(Event):
    """test_auroc: None when the epoch was not scored (the last epoch is scored in the
    fold's metrics); lrs: each parameter group's lr at the epoch's end (0 = frozen)."""

    type: ClassVar[str] = "epoch_finished"
    fold_id: str
    epoch: int
    n_epochs: int
    phase: str
    train_loss: float | None
    test_auroc: float | None = None
    lrs: dict[str, float] = field(default_factory=dict)
    seconds: float | None = None


@dataclass(frozen=True, kw_only=True)
class FoldFinished(Event):
    """metrics: auroc, balanced_accuracy, f1, sensitivity, specificity, precision, npv
    (None where undefined; empty for the final model)."""

    type: ClassVar[str] = "fold_finished"
    fold_id: str
    metrics: dict[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ProgressUpdate(Event):
    """done/total: work units over the whole run (core.training.estimate: image forward
    passes, a backward pass counting 2); eta_s None until measurable."""

    type: ClassVar[str] = "progress"
    done: float
    total: float
    eta_s: float | None = None


@dataclass(frozen=True, kw_only=True)
class RunWarning(Event):
    type: ClassVar[str] = "warning"
    message: str


@dataclass(frozen=True, kw_only=True)
class RunFinished(Event):
    """summary: the run's summary as written (RunFolder.summary())."""

    type: ClassVar[str] = "run_finished"
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class RunCancelled(Event):
    """The run stopped on request and can be resumed."""

    type: ClassVar[str] = "run_cancelled"
    message: str = "cancelled"


@dataclass(frozen=True, kw_only=True)
class RunFailed(Event):
    type: ClassVar[str] = "run_failed"
    error: str
    traceback: str | None = None


@dataclass(frozen=True, kw_only=True)
class UnknownEvent(Event):
    """A type this version does not know (written by a newer one): kept, not acted on."""

    type_name: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def type(self) -> str:  # type: ignore[override]
        return self.type_name

    def to_json(self) -> dict[str, Any]:
        return {**self.data, "type": self.type_name, "time": self.time, "seq": self.seq,
                "schema": self.schema}  # fmt: skip


_TYPED = (RunStarted, FoldStarted, EpochStarted, BatchLoss, EpochFinished, FoldFinished,
          ProgressUpdate, RunWarning, RunFinished, RunCancelled, RunFailed)  # fmt: skip
EVENT_CLASSES: dict[str, type[Event]] = {cls.type: cls for cls in _TYPED}
EVENT_TYPES = tuple(EVENT_CLASSES)
TERMINAL_TYPES = ("run_finished", "run_cancelled", "run_failed")


def make_event(type_: str, seq: int = -1, **fields: Any) -> Event:
    """The event of `type_` with these fields; a missing or unknown field is an error
    here (the writer is held to the schema; readers are tolerant)."""
    cls = EVENT_CLASSES.get(type_)
    if cls is None:
        raise ValueError(f"unknown event type {type_!r}")
    try:
        return cls(time=time.time(), seq=seq, **fields)
    except TypeError as exc:
        raise ValueError(f"event {type_!r}: {exc}") from None


def parse_event(data: dict[str, Any]) -> Event:
    """One decoded events.jsonl line -> its typed event. Raises ValueError when a known
    type lacks a field it needs."""
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ValueError("not an event: no type")
    common = {
        "time": float(data.get("time") or 0.0),
        "seq": int(data["seq"]) if isinstance(data.get("seq"), int) else -1,
        "schema": int(data["schema"]) if isinstance(data.get("schema"), int) else 1,
    }
    cls = EVENT_CLASSES.get(data["type"])
    if cls is None:
        rest = {k: v for k, v in data.items() if k not in ("type", *common)}
        return UnknownEvent(type_name=data["type"], data=rest, **common)
    known = {f.name for f in dataclasses.fields(cls)} - set(common)
    try:
        return cls(**common, **{k: v for k, v in data.items() if k in known})
    except TypeError as exc:
        raise ValueError(f"event {data['type']!r}: {exc}") from None


def event_line(event: Event) -> str:
    return json.dumps(event.to_json(), default=_json_default) + "\n"


class EventLog:
    """Appends events to events.jsonl, one line each, flushed and fsynced per line.

    A kill can at worst cut the last line short; the readers skip such a line.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._seq = sum(1 for _ in read_events(self.path)) if self.path.exists() else 0

    def emit(self, type_: str, **fields: Any) -> Event:
        event = make_event(type_, self._seq, **fields)
        self._seq += 1
        try:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(event_line(event))
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:  # a full disk names no file: say which (the CLI shows it)
            if exc.filename or not exc.errno:
                raise
            raise OSError(exc.errno, exc.strerror, str(self.path)) from exc
        return event


def _json_default(obj: Any) -> Any:
    # numpy scalars and paths sneak into events; store them as plain JSON.
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


def _parse_line(line: bytes | str) -> Event | None:
    try:
        return parse_event(json.loads(line))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None  # a line cut short by a kill, followed by newer lines
    except ValueError as exc:
        log.warning("skipping an event that does not fit the schema: %s", exc)
        return None


def read_events(path: str | Path, start: int = 0) -> Iterator[Event]:
    """Yield the events of a (possibly still growing) events.jsonl from byte `start`."""
    events, _ = read_events_from(path, start)
    yield from events


def read_events_from(
    path: str | Path, offset: int, max_bytes: int | None = None
) -> tuple[list[Event], int]:
    """The complete events after byte `offset`, and the byte offset after the last
    complete line: pass it back next time to tail a growing stream without re-reading.

    Reads bytes, not text, so the offset is a true file position; a line still being
    written (no newline yet) is left for the next call. `max_bytes` caps one read (a
    follower catching up on a long run reads it in slices).
    """
    path = Path(path)
    if not path.exists():
        return [], offset
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read() if max_bytes is None else fh.read(max_bytes)
    end = data.rfind(b"\n") + 1  # 0 when no complete line yet
    events = [e for line in data[:end].splitlines() if (e := _parse_line(line)) is not None]
    return events, offset + end
