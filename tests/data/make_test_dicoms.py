"""Derive the compressed / LUT test DICOMs from the real NIH radiograph in this folder.

Run from the repository root (needs pyjpegls for the JPEG-LS encoder, a dev extra):
    .venv/bin/python tests/data/make_test_dicoms.py
Writes tests/data/dicom/dx256_*.dcm and tests/data/images/nih_dx_16bit.png. The outputs
are committed; the script documents how they were made. The source is downscaled to
256 x 256 first to keep the files small. Only technical header fields are changed.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "dicom" / "nih_dx_no_finding.dcm"
SIZE = 256


def small_source() -> tuple[pydicom.Dataset, np.ndarray]:
    ds = pydicom.dcmread(SOURCE)
    pixels = np.asarray(
        Image.fromarray(ds.pixel_array).resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    )
    ds.Rows, ds.Columns = SIZE, SIZE
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PixelData = pixels.astype(np.uint8).tobytes()
    return ds, pixels


def with_16bit(ds: pydicom.Dataset, stored: np.ndarray, bits_stored: int) -> pydicom.Dataset:
    out = copy.deepcopy(ds)
    out.BitsAllocated, out.BitsStored, out.HighBit = 16, bits_stored, bits_stored - 1
    out.PixelRepresentation = 0
    out.PixelData = stored.astype(np.uint16).tobytes()
    return out


def main() -> None:
    ds, pixels = small_source()
    written = []

    plain = copy.deepcopy(ds)
    plain.save_as(HERE / "dicom" / "dx256_explicit_le.dcm", enforce_file_format=True)
    written.append("dx256_explicit_le.dcm")
    for uid, name in (
        (JPEG2000Lossless, "dx256_jpeg2000.dcm"),
        (JPEGLSLossless, "dx256_jpegls.dcm"),
        (RLELossless, "dx256_rle.dcm"),
    ):
        enc = copy.deepcopy(ds)
        enc.compress(uid)
        enc.save_as(HERE / "dicom" / name, enforce_file_format=True)
        written.append(name)

    # 12-bit stored values, rescale slope 2 / intercept -1000 and a window spanning the
    # whole rescaled range: decoding must undo all three and give the 8-bit image back.
    stored12 = pixels.astype(np.uint16) * 16
    win = with_16bit(ds, stored12, 12)
    win.RescaleSlope, win.RescaleIntercept = 2, -1000
    lo, hi = -1000, 4095 * 2 - 1000
    win.WindowCenter, win.WindowWidth = (lo + hi) / 2 + 0.5, hi - lo + 1
    win.save_as(HERE / "dicom" / "dx256_12bit_rescale_window.dcm", enforce_file_format=True)
    written.append("dx256_12bit_rescale_window.dcm")

    # A narrow window (soft tissue): values outside it saturate.
    narrow = copy.deepcopy(win)
    narrow.WindowCenter, narrow.WindowWidth = 1500, 2000
    narrow.save_as(HERE / "dicom" / "dx256_12bit_narrow_window.dcm", enforce_file_format=True)
    written.append("dx256_12bit_narrow_window.dcm")

    # A VOI LUT sequence (square-root curve, 12-bit in, 16-bit out) instead of a window.
    lut = with_16bit(ds, stored12, 12)
    item = pydicom.Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    item.LUTData = np.round(65535 * np.sqrt(np.arange(4096) / 4095)).astype(np.uint16).tolist()
    item["LUTData"].VR = "US"
    item.LUTExplanation = "square root"
    lut.VOILUTSequence = pydicom.Sequence([item])
    lut.save_as(HERE / "dicom" / "dx256_12bit_voi_lut.dcm", enforce_file_format=True)
    written.append("dx256_12bit_voi_lut.dcm")

    # 16-bit PNG of the same radiograph (x257 maps 0..255 onto 0..65535 exactly).
    png16 = (pixels.astype(np.uint16) * 257).astype(np.uint16)
    Image.fromarray(png16).save(HERE / "images" / "nih_dx_16bit.png")
    Image.fromarray(pixels.astype(np.uint8)).save(HERE / "images" / "nih_dx_8bit.png")
    written += ["nih_dx_16bit.png", "nih_dx_8bit.png"]
    print("\n".join(written))


if __name__ == "__main__":
    main()
