"""Atomic file writes: temp file in the same folder, fsync, then os.replace.

A killed process leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates 0600 files; a report or run folder should be as readable as any file
# the user creates, so apply the process umask once, like open() would.
_FILE_MODE = 0o666 & ~_umask()


def atomic_write(
    path: str | Path, write: Callable[[BinaryIO], None], *, fsync: bool = True
) -> Path:
    """fsync=False skips the flush to disk (still atomic): for rebuildable cache entries,
    where an fsync per file would cost more than the work it saves."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno and not exc.filename:
            # a failed write (full disk) names no file; say which one (the CLI shows it)
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes, *, fsync: bool = True) -> Path:
    return atomic_write(path, lambda fh: fh.write(data), fsync=fsync)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
