"""Where a command may write: never over its own input, never over a file it did not
create unless the user says --force.

Paths are compared resolved (symlinks, `..`, relative paths) and, where both exist, by
device and inode (os.path.samefile), so `--out ./cohort.csv`, a link to the table or a
hard link are all caught.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from core.errors import InputError


def same_file(a: str | Path, b: str | Path) -> bool:
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def inside(path: str | Path, folder: str | Path) -> bool:
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


def check_output_file(
    path: str | Path,
    *,
    inputs: Iterable[str | Path] = (),
    input_dirs: Iterable[str | Path] = (),
    force: bool = False,
    flag: str = "--out",
) -> Path:
    """PATH as a file the command may write. Refused (InputError, exit 2): PATH is one of
    `inputs` or an existing file inside an `input_dirs` folder (a run the command reads),
    even with --force; PATH is a folder; PATH exists already and `force` is not set."""
    path = Path(path)
    for source in inputs:
        if same_file(path, source):
            raise InputError(
                f"{flag} names an input of this command ({source}); writing there would "
                "destroy it. Choose another file name",
                file=path,
            )
    for folder in input_dirs:
        if path.is_file() and inside(path, folder):
            raise InputError(
                f"{flag} names a file of {folder}, which this command reads; writing "
                "there would destroy it. Choose another file name",
                file=path,
            )
    if path.is_dir():
        raise InputError(f"{flag} names a folder; give a file name", file=path)
    if path.exists() and not force:
        raise InputError(
            f"{flag}: the file already exists; choose another name, or add --force to replace it",
            file=path,
        )
    return path


def check_output_dir(path: str | Path, *, flag: str = "--out") -> Path:
    """PATH as a folder to write into (created if missing); refused if it is a file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{flag} names an existing file, not a folder; give a folder", file=path)
    return path


def refuse_existing(paths: Iterable[Path], *, force: bool, flag: str = "--out") -> None:
    """Refuse to replace files that are already there (results of an earlier command or
    anything else) unless `force`."""
    if force:
        return
    existing = [p for p in paths if p.exists()]
    if existing:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise InputError(
            f"{flag}: {existing[0].name}{more} already exist(s) there; choose another "
            "folder or file name, or add --force to replace them",
            file=existing[0].parent,
        )
