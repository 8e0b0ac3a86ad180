"""Disk cache of preprocessed pixels, keyed by file content and preprocessing settings.

Layout under the root (default paths.cache_dir()):
    pixels/<PreprocessConfig.key()>/<sha[:2]>/<sha256 of file>.npy   uint16 [R, R]
    content-index.json   sha256(path|size|mtime_ns) -> sha256 of the file content

Only pixels and hashes are stored: no file names, no DICOM header, nothing that
identifies a patient. The index is keyed by a hash of the path, so a second import
neither re-reads nor re-hashes unchanged files. Every write is atomic.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from pathlib import Path

import numpy as np

from core import paths
from core.atomic import atomic_write_bytes, atomic_write_text
from core.cohort.preprocess import PreprocessConfig

log = logging.getLogger(__name__)
INDEX_NAME = "content-index.json"


def file_sha256(path: str | Path) -> tuple[str, bytes]:
    data = Path(path).read_bytes()
    return hashlib.sha256(data).hexdigest(), data


def stat_key(path: str | Path, st: os.stat_result) -> str:
    return hashlib.sha256(f"{path}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:32]


class ImageCache:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else paths.cache_dir()
        self._index: dict[str, str] | None = None
        self._index_dirty: dict[str, str] = {}

    def entry_path(self, sha: str, cfg: PreprocessConfig) -> Path:
        return self.root / "pixels" / cfg.key() / sha[:2] / f"{sha}.npy"

    def get(self, sha: str, cfg: PreprocessConfig) -> np.ndarray | None:
        path = self.entry_path(sha, cfg)
        try:
            arr = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:  # a damaged entry is rebuilt, not trusted
            log.warning("cache entry %s unreadable (%s); decoding again", path.name, exc)
            return None
        size = cfg.resolution
        if arr.dtype != np.uint16 or arr.shape != (size, size):
            return None
        return arr

    def put(self, sha: str, cfg: PreprocessConfig, pixels: np.ndarray) -> None:
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(pixels, dtype=np.uint16), allow_pickle=False)
        atomic_write_bytes(self.entry_path(sha, cfg), buf.getvalue())

    # --- content index: unchanged file -> known hash, without reading it -------------
    def _load_index(self) -> dict[str, str]:
        if self._index is None:
            try:
                self._index = json.loads((self.root / INDEX_NAME).read_text("utf-8"))
            except (FileNotFoundError, ValueError):
                self._index = {}
        return self._index

    def known_sha(self, path: str | Path, st: os.stat_result) -> str | None:
        return self._load_index().get(stat_key(path, st))

    def remember_sha(self, path: str | Path, st: os.stat_result, sha: str) -> None:
        key = stat_key(path, st)
        self._load_index()[key] = sha
        self._index_dirty[key] = sha

    def save_index(self) -> None:
        """Merge new entries into the index on disk (another process may have added some)."""
        if not self._index_dirty:
            return
        try:
            on_disk = json.loads((self.root / INDEX_NAME).read_text("utf-8"))
        except (FileNotFoundError, ValueError):
            on_disk = {}
        on_disk.update(self._index_dirty)
        atomic_write_text(self.root / INDEX_NAME, json.dumps(on_disk, separators=(",", ":")))
        self._index = on_disk
        self._index_dirty = {}
