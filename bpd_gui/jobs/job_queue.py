"""All runs the app knows: past ones found on disk, queued ones, and the one running.

Queued runs start one at a time, in order. On start-up `discover` lists past runs and
reattaches to any whose recorded state says "running" with a live pid.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from bpd_gui.jobs import job_client
from bpd_gui.jobs.run_job import RunJob
from core.runs.folder import RunFolder, default_run_dir
from core.runs.run_config import RunConfig


def is_run_dir(path: Path) -> bool:
    return RunFolder.looks_like_run(path)


def new_run_dir(parent: Path, name: str) -> Path:
    """A new run folder under PARENT, named as `bpd train` names its runs."""
    return default_run_dir(name, parent)


class JobQueue(QObject):
    changed = Signal()  # a run was added, started, or ended
    job_updated = Signal(object)  # RunJob whose progress changed
    job_ended = Signal(object)  # RunJob whose process ended
    start_failed = Signal(object, str)  # RunJob, readable reason

    def __init__(self, parent=None):
        super().__init__(parent)
        self.jobs: list[RunJob] = []
        self._queue: list[RunJob] = []

    # --- finding runs -----------------------------------------------------------------
    def find(self, run_dir: Path) -> RunJob | None:
        run_dir = Path(run_dir).resolve()
        return next((j for j in self.jobs if j.run_dir.resolve() == run_dir), None)

    def open_run(self, run_dir: Path) -> RunJob:
        """Add a run folder from disk (or return the one already known) and read it."""
        known = self.find(run_dir)
        if known is not None:
            return known
        job = self._add(RunJob(Path(run_dir)))
        state = job_client.read_state(job.run_dir)
        pid = state.get("pid")
        if (
            state.get("status") == "running"
            and isinstance(pid, int)
            and job_client.pid_alive(pid)
            and job_client.looks_like_job(pid)
        ):
            job.attach(pid)
        job.load_history()
        self.changed.emit()
        return job

    def discover(self, parent: Path) -> list[RunJob]:
        if not parent.is_dir():
            return []
        found = sorted((p for p in parent.iterdir() if is_run_dir(p)), key=lambda p: p.name)
        return [self.open_run(p) for p in found]

    # --- queue --------------------------------------------------------------------------
    def enqueue_train(self, run_config: RunConfig, run_dir: Path) -> RunJob:
        job = self._add(RunJob(run_dir, run_config))
        job.queue_train()
        self._queue.append(job)
        self.changed.emit()
        self._start_next()
        return job

    def enqueue_resume(self, job: RunJob) -> None:
        """Continue a cancelled or failed run; one that never got as far as its folder
        (e.g. bad input) is started again from its settings instead."""
        if job.is_active or job.is_queued:
            return
        if RunFolder(job.run_dir).has_config:
            job.queue_resume()
        elif job.run_config is not None and not (
            job.run_dir.exists() and any(job.run_dir.iterdir())
        ):
            job.queue_train()
        else:
            self.start_failed.emit(job, f"{job.run_dir} has no config.json; it cannot be resumed.")
            return
        self._queue.append(job)
        self.changed.emit()
        self._start_next()

    def remove_queued(self, job: RunJob) -> None:
        if job in self._queue:
            self._queue.remove(job)
            job.pending_arguments = None
            if not job.run_dir.exists():
                self.jobs.remove(job)
            self.changed.emit()

    def forget(self, job: RunJob) -> None:
        """Drop a run that is neither training nor queued (its folder was removed)."""
        if job.is_active or job.is_queued or job not in self.jobs:
            return
        job.stop_following()
        self.jobs.remove(job)
        self.changed.emit()

    def active_job(self) -> RunJob | None:
        return next((j for j in self.jobs if j.is_active), None)

    def queued_jobs(self) -> list[RunJob]:
        return list(self._queue)

    def _add(self, job: RunJob) -> RunJob:
        job.setParent(self)
        job.updated.connect(lambda j=job: self.job_updated.emit(j))
        job.ended.connect(lambda _status, j=job: self._on_ended(j))
        self.jobs.append(job)
        return job

    def _on_ended(self, job: RunJob) -> None:
        self.job_ended.emit(job)
        self.changed.emit()
        self._start_next()

    def _start_next(self) -> None:
        if self.active_job() is not None or not self._queue:
            return
        job = self._queue.pop(0)
        try:
            job.start()
        except OSError as exc:
            job.progress.status = "failed"
            job.progress.error = str(exc)
            self.start_failed.emit(job, str(exc))
            self._start_next()
        self.changed.emit()
