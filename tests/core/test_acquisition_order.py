"""A patient's first image is the earliest acquired where the DICOM headers say when
(AcquisitionDate/Time and the like), the table's first otherwise; cohort.json says
which. The test DICOMs are the real radiograph of tests/data/dicom with dates set."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pydicom

from core.cohort.acquisition import TABLE_ORDER, acquisition_time, first_image_order
from core.cohort.cache import ImageCache
from core.cohort.loader import load_cohort
from core.cohort.prepare import prepare_images
from core.cohort.preprocess import PreprocessConfig

DATA = Path(__file__).resolve().parents[1] / "data"
SOURCE = DATA / "dicom" / "dx256_explicit_le.dcm"


def _dicom(path: Path, **tags: str) -> Path:
    ds = pydicom.dcmread(SOURCE)
    for name, value in tags.items():
        setattr(ds, name, value)
    ds.save_as(path, enforce_file_format=True)
    return path


def test_times_come_from_the_first_tags_present(tmp_path):
    acq = _dicom(tmp_path / "a.dcm", AcquisitionDate="20240102", AcquisitionTime="083015.5")
    stamp, how = acquisition_time(acq)
    assert (stamp.day, stamp.hour, stamp.minute, stamp.microsecond) == (2, 8, 30, 500000)
    assert how == "AcquisitionDate/Time"
    content = _dicom(tmp_path / "c.dcm", ContentDate="20240101", ContentTime="2359")
    assert acquisition_time(content)[1] == "ContentDate/Time"
    assert acquisition_time(SOURCE) is None  # the anonymised original has no dates
    assert acquisition_time(DATA / "images" / "nih_dx_16bit.png") is None


def test_order_needs_a_time_of_one_kind_for_every_image(tmp_path):
    late = _dicom(tmp_path / "late.dcm", AcquisitionDate="20240102", AcquisitionTime="0900")
    early = _dicom(tmp_path / "early.dcm", AcquisitionDate="20240102", AcquisitionTime="0100")
    series = _dicom(tmp_path / "series.dcm", SeriesDate="20240101", SeriesTime="0000")
    assert first_image_order([late, early]) == ([1, 0], "AcquisitionDate/Time")
    assert first_image_order([late, SOURCE]) == ([0, 1], TABLE_ORDER)  # one without a date
    assert first_image_order([late, series]) == ([0, 1], TABLE_ORDER)  # two kinds of clock


def test_prepared_cohort_ranks_by_acquisition_time_and_says_so(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    # patient A: the table lists the later radiograph first
    _dicom(images / "a_late.dcm", AcquisitionDate="20240102", AcquisitionTime="120000")
    _dicom(images / "a_early.dcm", AcquisitionDate="20240102", AcquisitionTime="010000")
    # patient B: a PNG beside a dated DICOM: table order
    _dicom(images / "b_dated.dcm", AcquisitionDate="20240101", AcquisitionTime="000000")
    shutil.copy(DATA / "images" / "nih_dx_16bit.png", images / "b_first.png")
    _dicom(images / "c.dcm", AcquisitionDate="20240103")  # one image: nothing to order
    rows = [
        ("A", "images/a_late.dcm", "yes"),
        ("A", "images/a_early.dcm", "yes"),
        ("B", "images/b_first.png", "no"),
        ("B", "images/b_dated.dcm", "no"),
        ("C", "images/c.dcm", "no"),
    ]
    table = tmp_path / "cohort.csv"
    with open(table, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([("patient_id", "image", "bpd"), *rows])
    cohort = load_cohort(table, outcome_column="bpd", positive=["yes"], negative=["no"])
    prepared = prepare_images(
        cohort, PreprocessConfig(resolution=32), ImageCache(tmp_path / "cache"), workers=1
    )
    patients = prepared.cohort.patients
    first = {p.patient_id: Path(p.images[0].path).name for p in patients}
    assert first == {"A": "a_early.dcm", "B": "b_first.png", "C": "c.dcm"}
    # rank 0 (the image a test patient is scored by) is the first of each patient's list
    ranks = [(patients[p].patient_id, int(r)) for p, r in
             zip(prepared.image_patient, prepared.image_rank, strict=True)]  # fmt: skip
    assert ranks == [("A", 0), ("A", 1), ("B", 0), ("B", 1), ("C", 0)]
    summary = prepared.cohort.summary()
    assert summary["first_image_by"] == {"AcquisitionDate/Time": 1, TABLE_ORDER: 1}
