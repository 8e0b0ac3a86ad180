"""Which of a patient's images is the first: by acquisition time where the DICOM
headers say it, else the table's order.

Only date/time header fields are read (never names or ids), without the pixel data.
A patient's images are put in time order only when every one of them has a time from
the same pair of tags (AcquisitionDateTime, else AcquisitionDate/Time, ContentDate/Time,
SeriesDate/Time); a patient with a PNG, a DICOM without those tags, or tags of
different kinds keeps the table's order, so two clocks are never compared.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

# (label recorded in cohort.json, date tag, time tag); the first a file has is used
TIME_TAGS = (
    ("AcquisitionDateTime", "AcquisitionDateTime", None),
    ("AcquisitionDate/Time", "AcquisitionDate", "AcquisitionTime"),
    ("ContentDate/Time", "ContentDate", "ContentTime"),
    ("SeriesDate/Time", "SeriesDate", "SeriesTime"),
)
TABLE_ORDER = "table order"
_READ = [tag for _, date, time in TIME_TAGS for tag in (date, time) if tag]


NOT_DICOM = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"})


def _parse(date: str, time: str | None) -> datetime | None:
    """DICOM DA (YYYYMMDD) + TM (HHMMSS.ffffff, trailing parts optional), or a DT
    (the two together; a UTC offset is ignored, the images of one patient share it)."""
    text = (date or "").strip()
    text = text[:8] + time.strip() if time else text
    text = text[:8] + text[8:].split("+")[0].split("-")[0]
    digits, _, fraction = text.partition(".")
    if len(digits) < 8 or not digits.isdigit():
        return None
    digits = digits[:14].ljust(14, "0")
    try:
        stamp = datetime.strptime(digits, "%Y%m%d%H%M%S")
    except ValueError:
        return None
    if fraction.isdigit():
        stamp = stamp.replace(microsecond=int(fraction[:6].ljust(6, "0")))
    return stamp


def acquisition_time(path: str | Path) -> tuple[datetime, str] | None:
    """(time, which tags) from a DICOM file's header; None for other files or
    a header without a usable date."""
    import pydicom

    if Path(path).suffix.lower() in NOT_DICOM:
        return None
    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True, specific_tags=_READ)
    except Exception:  # not DICOM (PNG, JPEG) or unreadable: the decoder reports that
        return None
    for label, date_tag, time_tag in TIME_TAGS:
        date = ds.get(date_tag)
        if not date:
            continue
        stamp = _parse(str(date), str(ds.get(time_tag) or "") if time_tag else None)
        if stamp is not None:
            return stamp, label
    return None


def first_image_order(paths: Sequence[str | Path]) -> tuple[list[int], str]:
    """Indices of `paths` (one patient's images, table order) earliest first, and how
    they were ordered: the tags' label, or TABLE_ORDER."""
    table = list(range(len(paths)))
    if len(paths) < 2:
        return table, TABLE_ORDER
    times = [acquisition_time(p) for p in paths]
    if any(t is None for t in times) or len({t[1] for t in times}) != 1:
        return table, TABLE_ORDER
    order = sorted(table, key=lambda i: (times[i][0], i))  # ties keep the table's order
    return order, times[0][1]
