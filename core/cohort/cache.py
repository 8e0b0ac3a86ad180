"""Disk cache of preprocessed pixels, keyed by file content and preprocessing settings.

Layout under the root (default paths.cache_dir()):
    pixels/<PreprocessConfig.key()>/<sha[:2]>/<sha256 of file>.u16
        raw little-endian uint16 [R, R]: no header to parse, read straight into the
        cohort's array; an entry of the wrong size is treated as missing and rebuilt
    packs/<PreprocessConfig.key()>/<hash of the cohort's image hashes>-<N>.u16
        the same pixels for a whole cohort, in table order ([N, R, R]): a re-import of an
        unchanged large cohort maps this one file instead of opening N entries. A pure
        duplicate of the entries; safe to delete.
    content-index.json   sha256(path|size|mtime_ns) -> sha256 of the file content

Only pixels and hashes are stored: no file names, no DICOM header, nothing that
identifies a patient. The index is keyed by a hash of the path, so a second import
neither re-reads nor re-hashes unchanged files. Every write is atomic.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from core import paths
from core.atomic import atomic_write, atomic_write_bytes, atomic_write_text
from core.cohort.preprocess import PreprocessConfig
from core.errors import InputError

log = logging.getLogger(__name__)
INDEX_NAME = "content-index.json"


class CacheWriteError(InputError):
    """The cache folder cannot be written (disk full, read-only, no permission)."""


def cache_write_message(root: str | Path, exc: OSError) -> str:
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        why = "a file stands where one of its folders belongs"
    else:
        why = exc.strerror or type(exc).__name__
    return (
        f"cannot write the image cache in {root} ({why}); free disk space there or make "
        "the folder writable, or set BPD_STUDIO_HOME to a folder with room (the cache is "
        "safe to delete)"
    )


def _writing(method):
    """OSError while writing the cache -> CacheWriteError with the folder and the fix."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except OSError as exc:
            raise CacheWriteError(cache_write_message(self.root, exc)) from exc

    return wrapper


def file_sha256(path: str | Path) -> tuple[str, bytes]:
    data = Path(path).read_bytes()
    return hashlib.sha256(data).hexdigest(), data


def stat_key(path: str | Path, st: os.stat_result) -> str:
    return hashlib.sha256(f"{path}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:32]


@functools.lru_cache(maxsize=64)
def _key(cfg: PreprocessConfig) -> str:
    return cfg.key()


class ImageCache:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else paths.cache_dir()
        self._root_str = str(self.root)
        self._index: dict[str, str] | None = None
        self._index_dirty: dict[str, str] = {}

    def entry_path(self, sha: str, cfg: PreprocessConfig) -> Path:
        return self.root / "pixels" / _key(cfg) / sha[:2] / f"{sha}.u16"

    def get_into(self, sha: str, cfg: PreprocessConfig, out: np.ndarray) -> bool:
        """Fill `out` (uint16 [R, R], C-contiguous) from the cache; False on a miss."""
        # Plain string path: this runs once per image on every re-import.
        path = f"{self._root_str}/pixels/{_key(cfg)}/{sha[:2]}/{sha}.u16"
        try:
            with open(path, "rb") as fh:
                n = fh.readinto(memoryview(out).cast("B"))
                complete = n == out.nbytes and not fh.read(1)
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as exc:
            log.warning("cache entry %s unreadable (%s); decoding again", sha, exc)
            return False
        if not complete:  # torn or foreign file: rebuilt, never trusted
            log.warning("cache entry %s has the wrong size; decoding again", sha)
        return complete

    def get(self, sha: str, cfg: PreprocessConfig) -> np.ndarray | None:
        out = np.empty((cfg.resolution, cfg.resolution), dtype=np.uint16)
        return out if self.get_into(sha, cfg, out) else None

    @_writing
    def check_writable(self, cfg: PreprocessConfig) -> None:
        """Fail before any decoding when no entry could be stored (a read-only folder, a
        file where the folder belongs); a disk filling up later fails at put()."""
        folder = self.root / "pixels" / _key(cfg)
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()

    @_writing
    def put(self, sha: str, cfg: PreprocessConfig, pixels: np.ndarray) -> None:
        data = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
        # No fsync: an entry lost in a crash is simply decoded again.
        atomic_write_bytes(self.entry_path(sha, cfg), data, fsync=False)

    # --- packs: one file per (cohort, settings) ----------------------------------------
    def pack_path(self, shas: list[str], cfg: PreprocessConfig) -> Path:
        digest = hashlib.sha256("\n".join(shas).encode()).hexdigest()[:32]
        return self.root / "packs" / _key(cfg) / f"{digest}-{len(shas)}.u16"

    def load_pack(self, shas: list[str], cfg: PreprocessConfig) -> np.ndarray | None:
        """The cohort's pixels mapped from disk (copy-on-write: writes never reach the
        file), or None. Pages are read when used, so nothing is copied up front."""
        path = self.pack_path(shas, cfg)
        shape = (len(shas), cfg.resolution, cfg.resolution)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        if size != int(np.prod(shape)) * 2:
            log.warning("cache pack %s has the wrong size; ignored", path.name)
            return None
        return np.memmap(path, dtype="<u2", mode="c", shape=shape)

    @_writing
    def save_pack(self, shas: list[str], cfg: PreprocessConfig, pixels: np.ndarray) -> None:
        path = self.pack_path(shas, cfg)
        if path.exists():  # content-addressed: an existing pack already holds these pixels
            return
        data = memoryview(np.ascontiguousarray(pixels, dtype="<u2")).cast("B")
        atomic_write(path, lambda fh: fh.write(data), fsync=False)

    # --- content index: unchanged file -> known hash, without reading it -------------
    def _load_index(self) -> dict[str, str]:
        if self._index is None:
            try:
                self._index = json.loads((self.root / INDEX_NAME).read_text("utf-8"))
            except (OSError, ValueError):  # missing or unreadable: files are hashed again
                self._index = {}
        return self._index

    def known_sha(self, path: str | Path, st: os.stat_result) -> str | None:
        return self._load_index().get(stat_key(path, st))

    def remember_sha(self, path: str | Path, st: os.stat_result, sha: str) -> None:
        key = stat_key(path, st)
        self._load_index()[key] = sha
        self._index_dirty[key] = sha

    @_writing
    def save_index(self) -> None:
        """Merge new entries into the index on disk (another process may have added some)."""
        if not self._index_dirty:
            return
        try:
            on_disk = json.loads((self.root / INDEX_NAME).read_text("utf-8"))
        except (FileNotFoundError, NotADirectoryError, ValueError):
            on_disk = {}
        on_disk.update(self._index_dirty)
        atomic_write_text(self.root / INDEX_NAME, json.dumps(on_disk, separators=(",", ":")))
        self._index = on_disk
        self._index_dirty = {}
