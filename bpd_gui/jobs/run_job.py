"""One run as the app sees it: its folder, its process (if any) and its progress.

A QTimer polls the run's event stream by byte offset and checks the pid; nothing blocks. The same
object follows a run the app started, one it reattached to after a restart, and a
finished run opened for viewing.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from bpd_gui.jobs import job_client
from core.runs.folder import RunFolder
from core.runs.run_config import RunConfig
from core.runs.run_progress import RunProgress

POLL_MS = 250
# Cap one poll's read so a huge backlog (reattaching to a long run) is consumed in slices
# and the GUI thread never parses megabytes in one go.
MAX_CHUNK_BYTES = 512 * 1024
TERMINAL = ("finished", "cancelled", "failed")


class RunJob(QObject):
    updated = Signal()  # new events arrived (progress changed)
    ended = Signal(str)  # the process is gone: finished / cancelled / failed

    def __init__(self, run_dir: Path, run_config: RunConfig | None = None, parent=None):
        super().__init__(parent)
        self.run_dir = Path(run_dir)
        self.run_config = run_config  # what a new run starts from (None: an existing run)
        self.pending_arguments: list[str] | None = None  # what to run when the queue says so
        self.pid: int | None = None
        self._popen = None  # subprocess.Popen when this app started the process
        self.exit_code: int | None = None
        self.progress = RunProgress()
        self._offset = 0
        self._stop_requested = False
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self.poll)

    # --- identity -------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.run_dir)

    @property
    def is_queued(self) -> bool:
        return self.pending_arguments is not None

    @property
    def is_active(self) -> bool:
        return self.pid is not None

    def status_text(self) -> str:
        if self.is_queued:
            return "queued"
        if self.is_active:
            return "running" if not self._stop_requested else "stopping"
        return self.progress.status

    # --- life cycle -----------------------------------------------------------------
    def queue_train(self) -> None:
        """`bpd train --config FILE` with this job's RunConfig, written atomically
        beside the app's job logs."""
        assert self.run_config is not None
        if not self.folder.has_events():  # a fresh start (again): forget an earlier failure
            self.progress, self._offset = RunProgress(), 0
        config_file = self.run_config.write(job_client.run_config_file(self.run_dir))
        self.pending_arguments = job_client.train_arguments(config_file, self.run_dir)

    def queue_resume(self) -> None:
        self.pending_arguments = job_client.resume_arguments(self.run_dir)

    def start(self) -> None:
        """Start the queued command. Raises OSError when the process cannot start."""
        arguments, self.pending_arguments = self.pending_arguments, None
        if arguments is None:
            return
        self._stop_requested = False
        self.progress.status = "running"
        self.progress.error = None
        self._popen = job_client.start_detached(arguments, self.run_dir)
        self.pid = self._popen.pid
        self.exit_code = None
        self._timer.start()
        self.updated.emit()

    def attach(self, pid: int) -> None:
        """Follow a job started by an earlier session of the app (or by the CLI)."""
        self.pid = pid
        self.progress.status = "running"
        self._timer.start()

    def load_history(self) -> None:
        """Read everything written so far (finished runs, or catching up on attach)."""
        while True:
            events, offset = self.folder.read_events(self._offset, MAX_CHUNK_BYTES)
            if offset == self._offset:
                break
            self._offset = offset
            self.progress.apply_all(events)
        if self.progress.summary is None:
            self.progress.summary = job_client.read_summary(self.run_dir)
        state = job_client.read_state(self.run_dir)
        if self.pid is None and self.progress.status not in TERMINAL:
            self._settle_without_process(state)

    def cancel(self) -> None:
        if self.is_queued:
            self.pending_arguments = None
            self.progress.status = self.progress.status if self._offset else "removed"
            self.ended.emit(self.progress.status)
            return
        if self.pid is not None:
            self._stop_requested = True
            job_client.request_stop(self.pid)
            self.updated.emit()

    def poll(self) -> None:
        events, self._offset = self.folder.read_events(self._offset, MAX_CHUNK_BYTES)
        if events:
            self.progress.apply_all(events)
            self.updated.emit()
        if self.pid is not None and not self._process_alive():
            self._on_process_gone()

    def _process_alive(self) -> bool:
        if self._popen is not None:  # our child: poll() also reaps it (no zombie)
            self.exit_code = self._popen.poll()
            return self.exit_code is None
        return job_client.pid_alive(self.pid)

    def _on_process_gone(self) -> None:
        self._timer.stop()
        self.pid = None
        self._popen = None
        # the last events may have landed between the read and the pid check
        self.load_history()
        if self.progress.status not in TERMINAL:
            self._settle_without_process(job_client.read_state(self.run_dir))
        self.updated.emit()
        self.ended.emit(self.progress.status)

    def _settle_without_process(self, state: dict) -> None:
        """No process and no terminal event: trust the run's recorded state, else report a crash."""
        status = state.get("status")
        if self._stop_requested and status not in ("finished", "failed"):
            # stopped on request, possibly before the job could record it itself
            self.progress.status = "cancelled"
            self.progress.message = "stopped on request"
            return
        if status in TERMINAL:
            self.progress.status = status
            if status == "failed" and not self.progress.error:
                self.progress.error = state.get("error") or "the job failed"
            return
        tail = job_client.stderr_tail(self.run_dir)
        self.progress.status = "failed"
        code = f" (exit code {self.exit_code})" if self.exit_code is not None else ""
        self.progress.error = state.get("error") or (
            f"The job stopped without finishing{code}." + (f"\n\n{tail}" if tail else "")
        )
        if tail and not self.progress.traceback:
            self.progress.traceback = tail

    def stop_following(self) -> None:
        self._timer.stop()
