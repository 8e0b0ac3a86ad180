"""The event stream every job emits: one small JSON object per line in events.jsonl.

The CLI prints these as progress; the app plots them. Both read only this schema, so
it is the contract between `core` and every client. Every event has:

    type     one of EVENT_TYPES
    time     seconds since the epoch (float)
    seq      position in the run's stream (0, 1, 2, ...)

and the fields listed per type below (all JSON-serialisable, no numpy types).

    run_started     run_id, run_dir, n_folds_total, n_patients, n_positive, config,
                    runtime {device, precision, channels_last}, resumed (bool)
    fold_started    fold_id ("r<repeat>-f<fold>"), repeat, fold, n_train, n_test
                    (fold_id "final": the model on every patient after the CV, with
                    repeat/fold null, n_test 0, epochs without test_auroc, and a
                    fold_finished with empty metrics)
    epoch_started   fold_id, epoch (0-based, over the whole fold: probe + fine-tuning),
                    n_epochs, phase ("probe", "head", "layer4", "layer3", "layer2", "full")
    batch           fold_id, epoch, batch, n_batches, loss   (throttled, not every batch)
    epoch_finished  fold_id, epoch, n_epochs, phase, train_loss, test_auroc (or null),
                    lrs {group: lr at epoch end}, seconds
    fold_finished   fold_id, metrics {auroc, balanced_accuracy, f1, sensitivity,
                    specificity, precision, npv}
    progress        done, total (units of work over the whole run: image forward passes,
                    a backward pass counting 2), eta_s (null until measurable)
    warning         message
    run_finished    summary (the content of summary.json)
    run_cancelled   message (the run can be resumed)
    run_failed      error, traceback (the run can be resumed where that makes sense)
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

EVENT_TYPES = (
    "run_started",
    "fold_started",
    "epoch_started",
    "batch",
    "epoch_finished",
    "fold_finished",
    "progress",
    "warning",
    "run_finished",
    "run_cancelled",
    "run_failed",
)

TERMINAL_TYPES = ("run_finished", "run_cancelled", "run_failed")

# fold_id of the --final-model phase (every patient, no test set): not a CV fold.
FINAL_FOLD_ID = "final"


def make_event(type_: str, seq: int, **fields: Any) -> dict[str, Any]:
    if type_ not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type_!r}")
    return {"type": type_, "time": time.time(), "seq": seq, **fields}


class EventLog:
    """Appends events to events.jsonl, one line each, flushed and fsynced per line.

    A kill can at worst cut the last line short; `read_events` skips such a line.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._seq = sum(1 for _ in read_events(self.path)) if self.path.exists() else 0

    def emit(self, type_: str, **fields: Any) -> dict[str, Any]:
        import os

        event = make_event(type_, self._seq, **fields)
        self._seq += 1
        line = json.dumps(event, default=_json_default) + "\n"
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        return event


def _json_default(obj: Any) -> Any:
    # numpy scalars and paths sneak into events; store them as plain JSON.
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


def read_events(path: str | Path, start: int = 0) -> Iterator[dict[str, Any]]:
    """Yield the events of a (possibly still growing) events.jsonl from byte `start`."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, encoding="utf-8") as fh:
        fh.seek(start)
        for line in fh:
            if not line.endswith("\n"):
                break  # a line still being written, or cut short by a kill
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def read_events_from(path: str | Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """The complete events after byte `offset`, and the byte offset after the last
    complete line: pass it back next time to tail a growing stream without re-reading.

    Reads bytes, not text, so the offset is a true file position; a line still being
    written (no newline yet) is left for the next call.
    """
    path = Path(path)
    if not path.exists():
        return [], offset
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read()
    end = data.rfind(b"\n") + 1  # 0 when no complete line yet
    events: list[dict[str, Any]] = []
    for line in data[:end].splitlines():
        try:
            events.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue  # a line cut short by a kill, followed by newer lines
    return events, offset + end
