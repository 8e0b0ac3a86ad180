"""The preprocessing cache: a second import decodes nothing; changed files are redone."""

import os
import shutil

import numpy as np
import pydicom
import pytest

import core.cohort.prepare as prepare_mod
from core.cohort.cache import ImageCache
from core.cohort.loader import load_cohort
from core.cohort.prepare import prepare_images
from core.cohort.preprocess import PreprocessConfig

CFG = PreprocessConfig(resolution=32)


@pytest.fixture()
def small_cohort(tmp_path, images_dir, dicom_dir):
    root = tmp_path / "site"
    root.mkdir()
    names = [
        "IM-0115-0001.jpeg",
        "IM-0117-0001.jpeg",
        "person1_bacteria_1.jpeg",
        "nih_dx_16bit.png",
    ]
    for name in names:
        shutil.copyfile(images_dir / name, root / name)
    ds = pydicom.dcmread(dicom_dir / "dx256_rle.dcm")
    ds.PatientName, ds.PatientBirthDate = "Mustermann^Erika", "20240101"
    ds.save_as(root / "named.dcm")
    rows = ["id,image,bpd", "A,IM-0115-0001.jpeg,0", "B,IM-0117-0001.jpeg,0"]
    rows += ["C,person1_bacteria_1.jpeg,2", "C,named.dcm,2", "D,nih_dx_16bit.png,3"]
    (root / "t.csv").write_text("\n".join(rows) + "\n")
    return load_cohort(root / "t.csv", positive=["2", "3"], negative=["0"])


def test_second_import_decodes_nothing(small_cohort, tmp_path, monkeypatch):
    cache = ImageCache(tmp_path / "cache")
    progress = []
    first = prepare_images(
        small_cohort, CFG, cache, on_progress=lambda d, t: progress.append((d, t))
    )
    assert first.n_decoded == 5 and first.pixels.shape == (5, 32, 32)
    assert progress[-1] == (5, 5) and [d for d, _ in progress] == sorted(d for d, _ in progress)
    assert list(first.image_patient) == [0, 1, 2, 2, 3] and list(first.image_rank) == [
        0,
        0,
        0,
        1,
        0,
    ]
    assert list(first.labels) == [0, 0, 1, 1]

    def must_not_decode(*args, **kwargs):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(prepare_mod, "decode_image_bytes", must_not_decode)
    monkeypatch.setattr(prepare_mod, "file_sha256", must_not_decode)  # not even re-hashed
    second = prepare_images(small_cohort, CFG, ImageCache(tmp_path / "cache"))
    assert second.n_decoded == 0 and second.n_cached == 5
    assert np.array_equal(first.pixels, second.pixels)
    assert [i.sha256 for p in second.cohort.patients for i in p.images] == [
        i.sha256 for p in first.cohort.patients for i in p.images
    ]


def test_changed_file_is_decoded_again(small_cohort, tmp_path, images_dir):
    cache = ImageCache(tmp_path / "cache")
    prepare_images(small_cohort, CFG, cache)
    target = small_cohort.patients[0].images[0].path
    shutil.copyfile(images_dir / "person47_bacteria_229.jpeg", target)
    os.utime(target, ns=(1, 1))  # a different mtime as well as different content
    again = prepare_images(small_cohort, CFG, ImageCache(tmp_path / "cache"))
    assert again.n_decoded == 1


def test_other_settings_use_other_entries(small_cohort, tmp_path):
    cache = ImageCache(tmp_path / "cache")
    prepare_images(small_cohort, CFG, cache)
    cropped = prepare_images(small_cohort, PreprocessConfig(32, center_crop=0.8), cache)
    assert cropped.n_decoded == 5


def test_cache_holds_pixels_and_hashes_only(small_cohort, tmp_path):
    cache_root = tmp_path / "cache"
    prepare_images(small_cohort, CFG, ImageCache(cache_root))
    files = [p for p in cache_root.rglob("*") if p.is_file()]
    assert len([p for p in files if p.suffix == ".u16"]) == 5
    blob = b"".join(p.read_bytes() for p in files)
    for secret in (b"Mustermann", b"20240101", b"named.dcm", b"site", b"IM-0115"):
        assert secret not in blob


def test_damaged_cache_entry_is_rebuilt(small_cohort, tmp_path):
    cache = ImageCache(tmp_path / "cache")
    first = prepare_images(small_cohort, CFG, cache)
    entry = cache.entry_path(first.cohort.patients[0].images[0].sha256, CFG)
    entry.write_bytes(b"garbage")
    again = prepare_images(small_cohort, CFG, ImageCache(tmp_path / "cache"))
    assert again.n_decoded == 1
    assert np.array_equal(again.pixels, first.pixels)


def test_broken_worker_pool_falls_back_to_this_process(small_cohort, tmp_path, monkeypatch):
    from concurrent.futures.process import BrokenProcessPool

    class BrokenPool:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def submit(self, *args, **kwargs):
            raise BrokenProcessPool("worker killed")

    monkeypatch.setattr(prepare_mod, "ProcessPoolExecutor", BrokenPool)
    monkeypatch.setattr(prepare_mod, "SERIAL_BELOW", 0)
    monkeypatch.setattr(prepare_mod, "CHUNK", 1)
    prepared = prepare_images(small_cohort, CFG, ImageCache(tmp_path / "cache"), workers=2)
    assert prepared.n_decoded == 5 and prepared.pixels.shape == (5, 32, 32)


def test_large_cohorts_reimport_from_one_packed_file(
    small_cohort, tmp_path, monkeypatch, images_dir
):
    monkeypatch.setattr(prepare_mod, "PACK_MIN_IMAGES", 1)
    first = prepare_images(small_cohort, CFG, ImageCache(tmp_path / "cache"))
    assert len(list((tmp_path / "cache" / "packs").rglob("*.u16"))) == 1

    second = prepare_images(small_cohort, CFG, ImageCache(tmp_path / "cache"))
    assert isinstance(second.pixels, np.memmap) and second.n_decoded == 0
    assert np.array_equal(second.pixels, first.pixels)
    second.pixels[0] = 0  # copy-on-write: the cache file keeps its pixels
    third = prepare_images(small_cohort, CFG, ImageCache(tmp_path / "cache"))
    assert np.array_equal(third.pixels, first.pixels)

    target = small_cohort.patients[1].images[0].path
    shutil.copyfile(images_dir / "person47_bacteria_229.jpeg", target)
    os.utime(target, ns=(1, 1))
    changed = prepare_images(small_cohort, CFG, ImageCache(tmp_path / "cache"))
    assert changed.n_decoded == 1 and not np.array_equal(changed.pixels[1], first.pixels[1])
    assert np.array_equal(changed.pixels[0], first.pixels[0])
