"""DICOM radiographs to grey values in [0, 1] (0 = black, as a radiologist views it).

Order of operations follows DICOM PS3.3 C.11: stored values -> Modality LUT (or rescale
slope/intercept) -> VOI LUT (or window centre/width) -> MONOCHROME1 inversion. Only
technical header fields are read; patient-identifying fields are never touched, so
nothing identifying can reach a log, a warning or the cache.
"""

from __future__ import annotations

import io
import logging
import warnings as pywarnings
from pathlib import Path

import numpy as np

from core.errors import ImageError

# Projection radiography only: CT/MR/US slices are not what the model was trained on.
ACCEPTED_MODALITIES = ("CR", "DX", "DR")
CHEST_BODY_PARTS = ("CHEST", "THORAX", "LUNG", "LUNGS", "TORSO", "THORAX_CHEST")
# Header text is echoed into messages and cohort.json only when it is one of these
# standard codes (DICOM PS3.3 C.7.3.1.1.1, PS3.16 CID 4031): a free-text field may hold
# anything, a name or a note included, so any other value is "an unexpected value".
KNOWN_MODALITIES = frozenset({
    "AR", "ASMT", "AU", "BDUS", "BI", "BMD", "CR", "CT", "DG", "DOC", "DR", "DX", "ECG",
    "EPS", "ES", "GM", "HC", "HD", "IO", "IOL", "IVOCT", "IVUS", "KER", "KO", "LEN", "LS",
    "MG", "MR", "M3D", "NM", "OAM", "OCT", "OP", "OPM", "OPT", "OPV", "OSS", "OT", "PLAN",
    "PR", "PT", "PX", "REG", "RESP", "RF", "RG", "RTDOSE", "RTIMAGE", "RTPLAN", "RTRECORD",
    "RTSTRUCT", "RWV", "SEG", "SM", "SMR", "SR", "SRF", "TG", "US", "VA", "XA", "XC",
})  # fmt: skip
KNOWN_BODY_PARTS = frozenset({
    *CHEST_BODY_PARTS, "ABDOMEN", "ABDOMENPELVIS", "ANKLE", "ARM", "BRAIN", "BREAST",
    "CERVIX", "CHESTABDOMEN", "CHESTABDPELVIS", "CLAVICLE", "COCCYX", "CSPINE", "ELBOW",
    "EXTREMITY", "FACE", "FINGER", "FOOT", "HAND", "HEAD", "HEADNECK", "HEART", "HIP",
    "JAW", "KNEE", "LEG", "LSPINE", "NECK", "PELVIS", "RIB", "RIBCAGE", "SACRUM",
    "SCAPULA", "SHOULDER", "SKULL", "SPINE", "SSPINE", "TSPINE", "WHOLEBODY", "WRIST",
})  # fmt: skip
KNOWN_PHOTOMETRIC = frozenset({
    "MONOCHROME1", "MONOCHROME2", "RGB", "PALETTE COLOR", "YBR_FULL", "YBR_FULL_422",
    "YBR_PARTIAL_422", "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT", "HSV", "ARGB", "CMYK",
})  # fmt: skip


def shown_code(value: str, known: frozenset[str]) -> str:
    """A header code as it may appear in a message: known codes verbatim, else nothing."""
    return value if value in known else "an unexpected value (not shown)"


# pydicom's own warnings and log lines can quote header values (a malformed PatientName,
# say); they are counted, never shown, and its logger is kept quiet.
logging.getLogger("pydicom").setLevel(logging.CRITICAL)


class DicomRejected(ImageError):
    """A readable DICOM file that is not a projection chest radiograph."""

    reason = "not_a_radiograph"


class NoPixelData(ImageError):
    reason = "no_pixel_data"


class DamagedPixelData(ImageError):
    """The file ends early or its pixel data does not decode: a copy went wrong."""

    reason = "damaged_pixel_data"


PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"  # (7FE0,0010) as written in little-endian files
RECOPY = "copy the file again from the archive (PACS) or remove it from the table"


def decode_dicom(data: bytes, name: str | Path) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Decode DICOM bytes; return (pixels float32 [H,W] in [0,1], [(reason, message)])."""
    with pywarnings.catch_warnings(record=True) as caught:
        pywarnings.simplefilter("always")
        pixels, notes = _decode(data, name)
    if caught:
        notes.append(
            (
                "dicom_irregular",
                f"{name}: pydicom reported {len(caught)} deviation(s) from the DICOM "
                "standard (details withheld: they may quote header values)",
            )
        )
    return pixels, notes


def _decode(data: bytes, name: str | Path) -> tuple[np.ndarray, list[tuple[str, str]]]:
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception as exc:
        raise ImageError(f"not a readable DICOM file ({exc})", file=name) from exc
    warnings: list[tuple[str, str]] = []

    modality = str(ds.get("Modality", "") or "").strip().upper()
    if modality and modality not in ACCEPTED_MODALITIES:
        raise DicomRejected(
            f"DICOM Modality is {shown_code(modality, KNOWN_MODALITIES)}; only projection "
            f"radiographs ({', '.join(ACCEPTED_MODALITIES)}) can be used. Remove this file "
            "from the table.",
            file=name,
        )
    if not modality:
        warnings.append(("modality_missing", f"{name}: DICOM Modality is not set"))
    body_part = str(ds.get("BodyPartExamined", "") or "").strip().upper()
    if body_part and body_part not in CHEST_BODY_PARTS:
        warnings.append(
            (
                "body_part_not_chest",
                f"{name}: BodyPartExamined is {shown_code(body_part, KNOWN_BODY_PARTS)}, "
                "not a chest; check the file",
            )
        )
    if "PixelData" not in ds:
        if PIXEL_DATA_TAG in data:  # pydicom drops pixel data cut off by the file's end
            raise DamagedPixelData(
                f"DICOM pixel data is truncated (the file ends inside it, {len(data)} bytes); "
                + RECOPY,
                file=name,
            )
        kind = "float pixel data" if "FloatPixelData" in ds else "no pixel data"
        raise NoPixelData(f"DICOM file has {kind}; it holds no radiograph", file=name)

    try:
        stored = ds.pixel_array
    except Exception as exc:
        raise DamagedPixelData(
            f"DICOM pixel data is truncated or cannot be decoded "
            f"(transfer syntax {_syntax_name(ds)}; {type(exc).__name__}); " + RECOPY,
            file=name,
        ) from exc

    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        stored = stored[0]
        warnings.append(("multi_frame", f"{name}: {frames} frames, using the first"))
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        return _colour_to_grey(stored, ds, name), warnings

    lo, hi = _modality_range(ds)
    values = apply_modality_lut(stored, ds)
    if ds.get("VOILUTSequence") or ("WindowCenter" in ds and "WindowWidth" in ds):
        if ds.get("VOILUTSequence") and not np.issubdtype(values.dtype, np.integer):
            values = np.rint(values).astype(np.int64)  # a LUT is indexed by whole numbers
        try:
            values = apply_voi_lut(values, ds, index=0)
            lo, hi = _voi_range(ds, lo, hi)
        except (ValueError, NotImplementedError, AttributeError) as exc:
            warnings.append(("bad_voi_lut", f"{name}: VOI LUT/window ignored ({exc})"))
    out = _to_unit(values, lo, hi)
    inverse = str(ds.get("PresentationLUTShape", "")).upper() == "INVERSE"
    if (photometric == "MONOCHROME1") != inverse:
        out = 1.0 - out
    return out, warnings


def _syntax_name(ds) -> str:
    """The transfer syntax's standard name, never free text from the file."""
    from pydicom.uid import UID_dictionary

    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is None:
        return "not set"
    return UID_dictionary[syntax][0] if syntax in UID_dictionary else "an unexpected UID"


def _modality_range(ds) -> tuple[float, float]:
    """Range of values after the Modality LUT, from BitsStored (not from this image)."""
    if ds.get("ModalityLUTSequence"):
        depth = int(ds.ModalityLUTSequence[0].LUTDescriptor[2])
        return 0.0, float(2**depth - 1)
    bits = int(ds.get("BitsStored", 0) or ds.get("BitsAllocated", 8))
    if int(ds.get("PixelRepresentation", 0)) == 1:
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    else:
        lo, hi = 0, 2**bits - 1
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        lo, hi = sorted((lo * slope + intercept, hi * slope + intercept))
    return float(lo), float(hi)


def _voi_range(ds, lo: float, hi: float) -> tuple[float, float]:
    """Windowing keeps the modality output range; a VOI LUT maps into its own entries."""
    seq = ds.get("VOILUTSequence")
    if seq and seq[0].get("LUTDescriptor") is not None and seq[0].get("LUTData") is not None:
        from pydicom.pixels import apply_voi

        entries = apply_voi(np.arange(-(2**16), 2**16, dtype=np.int64), ds, index=0)
        return float(entries.min()), float(entries.max())
    return lo, hi


def _to_unit(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    span = hi - lo if hi > lo else 1.0
    out = (np.asarray(values, dtype=np.float32) - np.float32(lo)) / np.float32(span)
    return np.clip(out, 0.0, 1.0, out=out)


def _colour_to_grey(stored: np.ndarray, ds, name: str | Path) -> np.ndarray:
    """Colour DICOM (secondary captures of radiographs): ITU-R 601 luma of RGB."""
    from pydicom.pixels import convert_color_space

    photometric = str(ds.PhotometricInterpretation).upper()
    rgb = stored
    if photometric.startswith("YBR") and photometric != "YBR_RCT" and stored.ndim == 3:
        rgb = convert_color_space(stored, photometric, "RGB")
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        shown = shown_code(photometric, KNOWN_PHOTOMETRIC)
        raise ImageError(f"unsupported PhotometricInterpretation {shown}", file=name)
    bits = int(ds.get("BitsStored", 8))
    grey = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.clip(grey / np.float32(2**bits - 1), 0.0, 1.0)
