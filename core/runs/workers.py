"""Folds trained concurrently in worker processes (`bpd train --workers N`).

Why processes: a fold at a small batch uses its threads badly, so N folds with
cores // N threads each finish sooner than N folds one after another with every thread
(core.training.parallel has the rule for N).

The contract stays the one of a single process:
- One run folder. Each worker writes only its fold's own folder (fold.json, checkpoint,
  model, predictions), exactly as the runner does in one process (core.runs.runner.
  train_fold); the pooled table and the summary are written by the parent at the end.
- One event writer: the parent. Workers send (fold id, type, fields) over a queue; the
  parent writes each event to events.jsonl with the next `seq` (core.runs.events), and
  turns the workers' per-fold progress into the run's progress.
- One lock: the parent holds the run's lock (core.runs.lock) for as long as workers
  run; a worker whose parent is gone stops after its current batch.
- The same results: each fold is seeded by its fold seed alone (core.training.folds.
  fold_seed), whichever process trains it.
- Cancel: the parent's CancelToken (SIGINT/SIGTERM) is passed on to every worker, which
  stops after its current batch; the run is left resumable as with one process.
  Workers ignore SIGINT themselves (a Ctrl-C reaches the whole process group) and stop
  on SIGTERM.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import pickle
import queue
import signal
import traceback
from typing import Any

from core.errors import Cancelled, RunError
from core.runs.folder import RunFolder
from core.training.context import FoldContext, ModelFactory
from core.training.folds import Fold
from core.training.runtime import CancelToken, Progress

log = logging.getLogger(__name__)

POLL_S = 0.2  # how often the parent looks at its CancelToken while waiting for events


class InitModelFactory:
    """A picklable model factory (a worker process builds its own models): fold seed ->
    `create_model(init, dropout, seed)`."""

    def __init__(self, init: str, dropout: float):
        self.init, self.dropout = init, dropout

    def __call__(self, seed: int):
        from core.models.registry import create_model

        return create_model(self.init, dropout=self.dropout, seed=seed)


class _WorkerCancel(CancelToken):
    """Cancelled by the parent's event, by SIGTERM, or when the parent is gone."""

    def __init__(self, stop: Any, parent_pid: int):
        super().__init__()
        self._stop, self._parent_pid = stop, parent_pid
        self.reason = "stopped with the run"

    @property
    def cancelled(self) -> bool:
        if os.getppid() != self._parent_pid:
            self.reason = "the training process that started this worker is gone"
            return True
        return self._stop.is_set() or super().cancelled


def worker_context():
    """The start method of fold workers. No fork: a forked torch with threads can
    deadlock. Frozen, a spawned worker re-runs the executable, whose launcher's
    freeze_support() turns it into the worker (bpd_gui.launcher)."""
    return mp.get_context("spawn")


def train_folds_in_workers(
    run: RunFolder,
    ctx: FoldContext,
    folds: list[Fold],
    work: dict[str, float],
    workers: int,
    threads: int,
) -> None:
    """Train `folds` (none finished yet) in `workers` processes with `threads` threads
    each; return when every one is finished. Raises Cancelled when the run was stopped,
    and a worker's own exception when a fold failed (the other folds are stopped)."""
    spawn = worker_context()
    tasks, messages, stop = spawn.Queue(), spawn.Queue(), spawn.Event()
    for fold in folds:
        tasks.put((fold, work[fold.fold_id]))
    for _ in range(workers):
        tasks.put(None)
    args = (str(run.path), ctx.data, ctx.cfg, ctx.runtime, ctx.model_factory, threads,
            tasks, messages, stop, os.getpid())  # fmt: skip
    procs = [spawn.Process(target=_worker_main, args=args, daemon=True) for _ in range(workers)]
    for p in procs:
        p.start()
    try:
        _follow(ctx, procs, messages, stop, folds, work)
    finally:
        _end(procs, stop)


def _follow(ctx, procs, messages, stop, folds, work) -> None:
    progress = ctx.progress
    base = progress.done  # the folds finished before this session
    partial: dict[str, float] = {}
    finished: set[str] = set()
    failure: BaseException | None = None
    while True:
        if ctx.cancel.cancelled and not stop.is_set():
            stop.set()
        try:
            msg = messages.get(timeout=POLL_S)
        except queue.Empty:
            if not any(p.is_alive() for p in procs) and messages.empty():
                break
            continue
        kind, fold_id = msg[0], msg[1]
        if kind == "event":
            type_, fields = msg[2], msg[3]
            if type_ == "progress":  # a worker's own fold -> the run's progress
                partial[fold_id] = float(fields["done"])
                progress.done = base + sum(partial.values())
                ctx.emit("progress", **progress.fields())
            else:
                ctx.emit(type_, **fields)
        elif kind == "done":
            finished.add(fold_id)
            partial.pop(fold_id, None)
            base += work[fold_id]
            progress.done = base + sum(partial.values())
            ctx.emit("progress", **progress.fields())
        elif kind == "failed" and failure is None:
            failure = msg[2]
            log.error("fold %s failed in a worker process:\n%s", fold_id, msg[3])
            stop.set()  # the run fails: the other folds stop too (and stay resumable)
    if failure is not None:
        raise failure
    missing = [f.fold_id for f in folds if f.fold_id not in finished]
    if missing and (ctx.cancel.cancelled or stop.is_set()):
        raise Cancelled(ctx.cancel.reason)
    if missing:
        codes = ", ".join(str(p.exitcode) for p in procs)
        raise RunError(
            f"a worker process ended without finishing fold(s) {', '.join(missing)} "
            f"(exit codes {codes}; out of memory? try --workers 1)"
        )


def _end(procs, stop) -> None:
    """Workers still running (the parent failed or got a second Ctrl-C) stop now."""
    if any(p.is_alive() for p in procs):
        stop.set()
        for p in procs:
            p.join(timeout=30)  # stop after the current batch
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)


# ----- in the worker process -------------------------------------------------------------
def _worker_main(
    run_dir: str,
    data,
    cfg,
    runtime,
    model_factory: ModelFactory,
    threads: int,
    tasks,
    messages,
    stop,
    parent_pid: int,
) -> None:
    import torch

    from core.runs.runner import train_fold
    from core.training.allocator import keep_freed_memory

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides (it got it too)
    cancel = _WorkerCancel(stop, parent_pid)
    signal.signal(signal.SIGTERM, lambda *_: cancel.cancel("stopped by SIGTERM"))
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(runtime.device.type == "cpu", warn_only=True)
    if runtime.keeps_freed_memory:
        keep_freed_memory()
    run = RunFolder(run_dir)
    while (task := tasks.get()) is not None:
        fold, fold_work = task
        if cancel.cancelled:
            break

        def emit(type_: str, _fold: str = fold.fold_id, **fields: Any):
            from core.runs.events import make_event

            event = make_event(type_, **fields)  # held to the schema here, not later
            messages.put(("event", _fold, type_, fields))
            return event

        ctx = FoldContext(data, cfg, runtime, model_factory, emit, cancel, Progress(fold_work))
        try:
            train_fold(run, ctx, fold)
        except Cancelled:
            break
        except BaseException as exc:
            messages.put(("failed", fold.fold_id, _picklable(exc), traceback.format_exc()))
            break
        messages.put(("done", fold.fold_id))


def _picklable(exc: BaseException) -> BaseException:
    """The exception itself when it crosses a process boundary intact (InputError keeps
    its exit code 2), else a RunError with its text."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RunError(f"{type(exc).__name__}: {exc}")
