"""Where a table's image references point: paths in a column, or files found by a pattern.

A reference must stay inside the images root: a table that points at ``../other`` or at
an absolute path elsewhere could pull in another study's files unnoticed. The check
resolves symbolic links first, so a link inside the root that points out is refused.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from pathlib import Path

# Files a folder-per-patient layout often holds beside the images.
JUNK_NAMES = {"thumbs.db", "desktop.ini", ".ds_store"}
JUNK_SUFFIXES = {".txt", ".csv", ".xlsx", ".xls", ".json", ".xml", ".pdf", ".md", ".ini"}


def normalize_root(root: str | Path) -> Path:
    return Path(os.path.normpath(os.path.abspath(root)))


def is_lexically_inside(path: str | Path, root: str | Path) -> bool:
    """Path text under root text (both normalised absolute paths); follows no link."""
    inner, outer = str(path), str(root)
    return inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep)


def is_inside(path: str | Path, root: str | Path) -> bool:
    """`path` with every symbolic link resolved lies under `root`, also resolved: a link
    (to a file or a folder) inside the root that points elsewhere is outside."""
    return is_lexically_inside(os.path.realpath(path), os.path.realpath(root))


def resolve_reference(cell: str, root: Path) -> Path:
    """A table cell -> absolute, normalised path (relative paths are under `root`).

    Backslashes from Windows-made tables are read as separators on POSIX systems."""
    text = cell.strip().strip('"')
    if os.sep == "/" and "\\" in text:
        text = text.replace("\\", "/")
    text = os.path.expanduser(text)
    if not os.path.isabs(text):
        text = os.path.join(root, text)
    return Path(os.path.normpath(text))


def _wanted(path: Path) -> bool:
    name = path.name.lower()
    return not (name.startswith(".") or name in JUNK_NAMES or path.suffix.lower() in JUNK_SUFFIXES)


class PatternMatcher:
    """Finds each patient's files for a pattern such as ``{patient_id}_*.png`` or
    ``{patient_id}/*``; folder listings are read once, not once per patient."""

    def __init__(self, root: Path, pattern: str | None):
        self.root = root
        self.pattern = pattern
        self._listings: dict[Path, list[str]] = {}

    def default_pattern(self, patient_id: str) -> list[str]:
        if (self.root / patient_id).is_dir():
            return ["{patient_id}/*"]
        return ["{patient_id}_*", "{patient_id}.*"]

    def find(self, patient_id: str) -> list[Path]:
        patterns = [self.pattern] if self.pattern else self.default_pattern(patient_id)
        found: list[Path] = []
        for pattern in patterns:
            found.extend(self._match(pattern.replace("{patient_id}", glob.escape(patient_id))))
        unique = sorted({Path(os.path.normpath(p)) for p in found})
        return [p for p in unique if p.is_file() and _wanted(p)]

    def _match(self, pattern: str) -> list[Path]:
        folder, _, name = pattern.replace("\\", "/").rpartition("/")
        if glob.has_magic(folder) or "**" in pattern:
            return [Path(p) for p in glob.glob(str(self.root / pattern), recursive=True)]
        base = self.root / folder if folder else self.root
        if base not in self._listings:
            try:
                self._listings[base] = sorted(os.listdir(base))
            except OSError:
                self._listings[base] = []
        return [base / n for n in fnmatch.filter(self._listings[base], name)]
