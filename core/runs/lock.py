"""One trainer per run folder: an exclusive flock on a file inside the folder.

`bpd train`, `bpd resume` (and so the --final-model phase) hold it for as long as they
train. The kernel releases an flock when its process ends in any way (SIGKILL, a crash,
power loss of a local disk), so a lock is never stale and nobody has to delete it. The
file stays in the folder; it only records who holds the lock, for the message.
The app reattaches to a run only while `holder()` says a trainer holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Any

from core.errors import InputError


class RunBusyError(InputError):
    """Another process is training this run folder (exit 2)."""


class RunLock:
    def __init__(self, path: str | Path, run_dir: str | Path):
        self.path = Path(path)
        self.run_dir = Path(run_dir)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock now or raise RunBusyError naming the process that has it."""
        if self._fd is not None:
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunBusyError(
                _busy_message(self.run_dir, holder(self.path)), file=self.run_dir
            ) from None
        except BaseException:
            os.close(fd)
            raise
        record = {"pid": os.getpid(), "host": socket.gethostname()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode() + b"\n", 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # nobody holds it: no stale pid in a later message
        os.close(fd)  # closing the last descriptor releases the flock

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder(path: str | Path) -> dict[str, Any] | None:
    """Who trains the run now ({pid, host}; {} if it did not say), or None if nobody."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                return json.loads(os.pread(fd, 4096, 0) or b"{}")
            except ValueError:
                return {}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _busy_message(run_dir: Path, who: dict[str, Any] | None) -> str:
    pid = (who or {}).get("pid")
    by = f" (process {pid} on {who.get('host', 'this machine')})" if pid else ""
    stop = f"`kill {pid}` stops it after the current batch" if pid else "stop that job"
    return (
        f"this run is still being trained by another job{by}; only one trainer may write a "
        f"run folder. Wait for it to finish, or stop it ({stop}; the app's Cancel does the "
        f"same) and then continue with `bpd resume {run_dir}`"
    )
