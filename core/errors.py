"""Typed exceptions. A user-facing message names the file, the row and the fix."""

from __future__ import annotations

from pathlib import Path


class BPDError(Exception):
    """Base class for every error BPD Studio raises on purpose."""


class InputError(BPDError):
    """Bad user input (table, image, setting). The CLI exits with code 2."""

    def __init__(self, message: str, *, file: str | Path | None = None, row: int | None = None):
        self.file = str(file) if file is not None else None
        self.row = row
        where = []
        if self.file:
            where.append(self.file)
        if row is not None:
            where.append(f"row {row}")
        prefix = f"{', '.join(where)}: " if where else ""
        super().__init__(prefix + message)
        self.detail = message


class ImageError(InputError):
    """An image file that cannot be used (unreadable, not a chest radiograph, ...)."""


class WeightsMissingError(BPDError):
    """Pretrained weights are not on this machine and cannot be downloaded."""


class RunError(BPDError):
    """A run folder that cannot be created, resumed or read."""


class CheckpointError(RunError):
    """A resume checkpoint that cannot be loaded safely (damaged, truncated, foreign)."""

    def __init__(self, message: str, *, file: str | Path | None = None):
        self.file = str(file) if file is not None else None
        super().__init__(f"{file}: {message}" if file else message)


class Cancelled(BPDError):
    """The user asked the job to stop; the run stays resumable."""
