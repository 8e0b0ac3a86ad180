"""Decode and preprocess every image of a cohort, through the disk cache.

Unchanged files are recognised from (path, size, mtime) without reading them; cached
pixels are loaded as-is, so a second import decodes nothing. New files are decoded in
a pool of worker processes. Images that cannot be used become problems, and patients
left without images become exclusions: the returned cohort says what happened.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.cohort.acquisition import first_image_order
from core.cohort.cache import CacheWriteError, ImageCache, file_sha256
from core.cohort.crops import Crop, CropTable
from core.cohort.images import decode_image_bytes
from core.cohort.model import Cohort, Exclusion, ImageRecord, Problem
from core.cohort.preprocess import PreprocessConfig, preprocess
from core.errors import ImageError

log = logging.getLogger(__name__)
ProgressFn = Callable[[int, int], None]
SERIAL_BELOW = 24  # a pool costs ~1 s to start; not worth it for a handful of files
CHUNK = 16
# Cohorts this large also get a single packed file, so re-importing them maps one file.
PACK_MIN_IMAGES = 1000


@dataclass
class PreparedCohort:
    cohort: Cohort
    pixels: np.ndarray  # uint16 [N_img, R, R]
    image_patient: np.ndarray  # int64 [N_img], index into cohort.patients
    # int64 [N_img], 0 = the patient's first image: by acquisition time where every
    # image of the patient has one in its DICOM header, else in table order
    image_rank: np.ndarray
    labels: np.ndarray  # int64 [N_patients]
    n_decoded: int = 0  # images decoded now (the rest came from the cache)
    n_cached: int = 0


@dataclass
class _Result:
    index: int
    sha: str | None = None
    pixels: np.ndarray | None = None
    error: str | None = None
    reason: str = "unreadable_image"
    warnings: tuple[tuple[str, str], ...] = ()
    decoded: bool = False
    fatal: str | None = None  # the cache cannot be written: the whole import stops


def entry_key(sha: str, crop: Crop | None) -> str:
    """The cache entry's name: the content hash, plus the crop box and rotation if any
    (the same file cropped two ways is two entries)."""
    return sha if crop is None else f"{sha}-c{crop.key()}"


def _decode_one(
    index: int, path: str, cfg: PreprocessConfig, cache_root: str, crops: CropTable | None = None
) -> _Result:
    """Worker: hash, then reuse a cache entry of identical content or decode and store."""
    cache = ImageCache(cache_root)
    try:
        sha, data = file_sha256(path)
    except OSError as exc:
        return _Result(index, error=f"cannot read image file ({exc.strerror})")
    crop = crops.for_sha(sha) if crops is not None else None
    key = entry_key(sha, crop)
    hit = cache.get(key, cfg)
    if hit is not None:
        return _Result(index, sha, hit)
    try:
        decoded = decode_image_bytes(data, path)
        pixels = preprocess(decoded.pixels, cfg, crop)
    except ImageError as exc:
        return _Result(
            index, sha, error=exc.detail, reason=getattr(exc, "reason", "unreadable_image")
        )
    except Exception as exc:  # a decoder bug must not stop a 5,000-image import
        return _Result(index, sha, error=f"cannot decode image ({type(exc).__name__}: {exc})")
    try:
        cache.put(key, cfg, pixels)
    except CacheWriteError as exc:  # returned, not raised: it must cross the process pool
        return _Result(index, sha, error=exc.detail, fatal=exc.detail)
    notes = tuple(zip(decoded.warning_reasons, decoded.warnings, strict=True))
    return _Result(index, sha, pixels, warnings=notes, decoded=True)


def _decode_chunk(items, cfg, cache_root, crops=None):
    return [_decode_one(i, p, cfg, cache_root, crops) for i, p in items]


def pool_context():
    """The decoding pool's start method. fork would copy a parent that may hold torch
    threads; forkserver is safe and fast."""
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("forkserver")
    return multiprocessing.get_context("spawn")


def prepare_images(
    cohort: Cohort,
    cfg: PreprocessConfig,
    cache: ImageCache | None = None,
    on_progress: ProgressFn | None = None,
    *,
    workers: int | None = None,
    crops: CropTable | None = None,
) -> PreparedCohort:
    """`crops`: per-image boxes by content hash (core.cohort.crops; only the used ones
    apply), as the run records them in its config."""
    cache = cache or ImageCache()
    crops = crops.used() if crops is not None and len(crops) else None

    def key(sha: str) -> str:
        return entry_key(sha, crops.for_sha(sha) if crops is not None else None)

    records = [
        (pi, rank, rec) for pi, p in enumerate(cohort.patients) for rank, rec in enumerate(p.images)
    ]
    total = len(records)
    report = _throttled(on_progress, total)
    stats, known = _stat_all(records, cache)
    if total >= PACK_MIN_IMAGES and all(known):
        packed = cache.load_pack([key(s) for s in known], cfg)
        if packed is not None:
            report(total, force=True)
            return _assemble(cohort, packed, records, [_Result(i, s) for i, s in enumerate(known)])

    results: list[_Result | None] = [None] * total
    misses: list[tuple[int, str]] = []
    size = cfg.resolution
    pixels = np.empty((total, size, size), dtype=np.uint16)  # filled as results arrive
    done = 0
    for i, st in enumerate(stats):
        if isinstance(st, str):
            results[i] = _Result(i, error=st)
            done += 1
            continue
        sha = known[i]
        if not (sha and cache.get_into(key(sha), cfg, pixels[i])):
            misses.append((i, str(records[i][2].path)))
            continue
        results[i] = _Result(i, sha)
        done += 1
        report(done)

    if misses:
        cache.check_writable(cfg)
    for res in _decode_all(misses, cfg, cache.root, workers, crops):
        if res.fatal:
            raise CacheWriteError(res.fatal)
        if res.pixels is not None:
            pixels[res.index] = res.pixels
            res.pixels = None
        results[res.index] = res
        st = stats[res.index]
        if res.sha and not isinstance(st, str):
            cache.remember_sha(records[res.index][2].path, st, res.sha)
        done += 1
        report(done)
    cache.save_index()
    if total >= PACK_MIN_IMAGES and all(r.error is None for r in results):
        cache.save_pack([key(r.sha) for r in results], cfg, pixels)
    report(total, force=True)
    return _assemble(cohort, pixels, records, results)


def _stat_all(records, cache: ImageCache) -> tuple[list, list[str | None]]:
    """Per image: its stat (or an error message) and its content hash if known unchanged."""
    stats: list[os.stat_result | str] = []
    known: list[str | None] = []
    for _, _, rec in records:
        try:
            st = os.stat(rec.path)
        except OSError as exc:
            stats.append(f"cannot read image file ({exc.strerror})")
            known.append(None)
            continue
        stats.append(st)
        known.append(cache.known_sha(rec.path, st))
    return stats, known


def _decode_all(misses, cfg, cache_root: Path, workers: int | None, crops=None):
    if not misses:
        return
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(misses) // CHUNK + 1))
    if n_workers == 1 or len(misses) < SERIAL_BELOW or not _main_is_importable():
        for i, path in misses:
            yield _decode_one(i, path, cfg, str(cache_root), crops)
        return
    chunks = [misses[k : k + CHUNK] for k in range(0, len(misses), CHUNK)]
    finished: set[int] = set()
    try:
        with ProcessPoolExecutor(n_workers, mp_context=pool_context()) as pool:
            futures = [pool.submit(_decode_chunk, c, cfg, str(cache_root), crops) for c in chunks]
            try:
                for fut in futures:
                    for res in fut.result():
                        finished.add(res.index)
                        yield res
            except GeneratorExit:  # the caller stopped (the cache is full): drop the rest
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    except (BrokenProcessPool, OSError) as exc:
        # Embedded interpreters, frozen apps or a killed worker: slower, but finish.
        log.warning("decoding processes failed (%s); decoding in this process", exc)
        for i, path in misses:
            if i not in finished:
                yield _decode_one(i, path, cfg, str(cache_root), crops)


def _main_is_importable() -> bool:
    """Worker processes re-import __main__ from its file; a script read from stdin has none.
    A frozen app's __main__ has no file on disk, but its children re-run the executable,
    whose launcher's freeze_support() turns them into workers (bpd_gui.launcher)."""
    if getattr(sys, "frozen", False):
        return True
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    return main_file is None or os.path.exists(main_file)


def _throttled(on_progress: ProgressFn | None, total: int):
    step = max(1, total // 200)
    last = [-1]

    def report(done: int, force: bool = False) -> None:
        if on_progress and (force or done - last[0] >= step) and done != last[0]:
            last[0] = done
            on_progress(done, total)

    return report


def _assemble(cohort: Cohort, pixels: np.ndarray, records, results) -> PreparedCohort:
    problems = list(cohort.problems)
    exclusions = list(cohort.exclusions)
    first_by_sha: dict[str, tuple[ImageRecord, int]] = {}
    kept: dict[int, list[tuple[ImageRecord, int]]] = {}
    n_decoded = 0
    for i, ((pi, _, rec), res) in enumerate(zip(records, results, strict=True)):
        pid = cohort.patients[pi].patient_id
        n_decoded += res.decoded
        for reason, message in res.warnings:
            problems.append(
                Problem(
                    reason, f"data row {rec.row}: {message}", "warning", rec.row, str(rec.path), pid
                )
            )
        if res.error is not None:
            problems.append(
                Problem(
                    res.reason,
                    f"data row {rec.row}: {res.error}",
                    "error",
                    rec.row,
                    str(rec.path),
                    pid,
                )
            )
            continue
        first = first_by_sha.get(res.sha)
        if first is not None and first[1] != pi:
            # One radiograph under two patients: one label is wrong, and the image would
            # leak between training and test folds. The repeat is not used.
            problems.append(
                Problem(
                    "duplicate_image",
                    f"data row {rec.row}: same content as {first[0].path.name} (data row "
                    f"{first[0].row}, patient {cohort.patients[first[1]].patient_id}); "
                    "the repeat is not used",
                    "error",
                    rec.row,
                    str(rec.path),
                    pid,
                )
            )
            continue
        if first is not None:  # same patient: harmless for the split, kept but worth a look
            problems.append(
                Problem(
                    "duplicate_image",
                    f"data row {rec.row}: same content as {first[0].path.name} "
                    f"(data row {first[0].row}) of the same patient; both are kept",
                    "warning",
                    rec.row,
                    str(rec.path),
                    pid,
                )
            )
        rec = ImageRecord(rec.path, rec.row, res.sha)
        first_by_sha.setdefault(res.sha, (rec, pi))
        kept.setdefault(pi, []).append((rec, i))

    patients, order, image_patient, image_rank = [], [], [], []
    first_by: dict[str, int] = {}  # patients with several images: how the first was chosen
    for pi, patient in enumerate(cohort.patients):
        images = kept.get(pi, [])
        if len(images) > 1:
            by_time, how = first_image_order([rec.path for rec, _ in images])
            images = [images[k] for k in by_time]
            first_by[how] = first_by.get(how, 0) + 1
        if not images:
            exclusions.append(
                Exclusion(
                    patient.patient_id,
                    "no_usable_images",
                    "none of the patient's images could be read (see problems): patient excluded",
                    patient.row,
                )
            )
            continue
        for rank, (_, index) in enumerate(images):
            order.append(index)
            image_patient.append(len(patients))
            image_rank.append(rank)
        patients.append(dataclasses.replace(patient, images=tuple(r for r, _ in images)))
    if order != list(range(len(records))):  # copy only when something was left out
        pixels = pixels[np.asarray(order, dtype=np.int64)]
    new_cohort = dataclasses.replace(
        cohort, patients=patients, exclusions=exclusions, problems=problems, first_image_by=first_by
    )
    return PreparedCohort(
        cohort=new_cohort,
        pixels=pixels,
        image_patient=np.asarray(image_patient, dtype=np.int64),
        image_rank=np.asarray(image_rank, dtype=np.int64),
        labels=np.asarray([p.label for p in patients], dtype=np.int64),
        n_decoded=n_decoded,
        n_cached=len(records) - sum(r.error is not None for r in results) - n_decoded,
    )
