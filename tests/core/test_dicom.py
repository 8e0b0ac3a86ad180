"""DICOM decoding on real radiographs (tests/data/dicom, see ATTRIBUTION.md there)."""

import shutil

import numpy as np
import pydicom
import pytest

from core.cohort.dicom import DicomRejected, NoPixelData
from core.cohort.images import read_image
from core.errors import ImageError


def chest_layout(pixels: np.ndarray) -> dict[str, float]:
    """Mean grey of the mediastinum, both lung fields and the upper abdomen."""
    h, w = pixels.shape
    rows = slice(int(0.3 * h), int(0.55 * h))
    lungs = np.r_[
        pixels[rows, int(0.2 * w) : int(0.35 * w)].ravel(),
        pixels[rows, int(0.65 * w) : int(0.8 * w)].ravel(),
    ]
    return {
        "mediastinum": float(pixels[rows, int(0.45 * w) : int(0.55 * w)].mean()),
        "lungs": float(lungs.mean()),
        "abdomen": float(pixels[int(0.88 * h) :, int(0.25 * w) : int(0.75 * w)].mean()),
    }


# Every radiograph that should decode to a normally displayed (MONOCHROME2-like) chest.
CHESTS = [
    "rsna_cr_jpeg_baseline_mono2.dcm",
    "nih_dx_no_finding.dcm",
    "nih_dx_bodypart_ribcage.dcm",
    "dx256_explicit_le.dcm",
    "dx256_jpeg2000.dcm",
    "dx256_jpegls.dcm",
    "dx256_rle.dcm",
    "dx256_12bit_rescale_window.dcm",
    "dx256_12bit_voi_lut.dcm",
]


@pytest.mark.parametrize("name", CHESTS)
def test_decodes_as_a_chest_radiograph_the_right_way_round(dicom_dir, name):
    img = read_image(dicom_dir / name)
    assert img.format == "dicom"
    assert img.pixels.dtype == np.float32 and img.pixels.ndim == 2
    assert img.pixels.min() >= 0.0 and img.pixels.max() <= 1.0
    layout = chest_layout(img.pixels)
    # Air-filled lungs are dark, mediastinum and abdomen bright: not inverted, not upside down.
    assert layout["mediastinum"] > layout["lungs"] + 0.2, layout
    assert layout["abdomen"] > layout["lungs"] + 0.2, layout


def test_monochrome1_twin_equals_inverted_monochrome2(dicom_dir):
    mono1 = read_image(dicom_dir / "rsna_cr_jpeg_baseline_mono1.dcm").pixels
    mono2 = read_image(dicom_dir / "rsna_cr_jpeg_baseline_mono2.dcm").pixels
    assert np.allclose(mono1, 1.0 - mono2, atol=1e-6)
    assert not np.allclose(mono1, mono2, atol=0.1)


def test_ct_modality_is_rejected_naming_the_file(dicom_dir):
    with pytest.raises(DicomRejected) as err:
        read_image(dicom_dir / "nih_dx_modality_ct.dcm")
    assert "CT" in str(err.value) and "nih_dx_modality_ct.dcm" in str(err.value)
    assert err.value.reason == "not_a_radiograph"


def test_rib_cage_body_part_is_warned_about(dicom_dir):
    img = read_image(dicom_dir / "nih_dx_bodypart_ribcage.dcm")
    assert img.warning_reasons == ["body_part_not_chest"]
    assert "RIBCAGE" in img.warnings[0]
    assert read_image(dicom_dir / "nih_dx_no_finding.dcm").warnings == []


@pytest.mark.parametrize(
    ("name", "syntax"),
    [
        ("rsna_cr_jpeg_baseline_mono2.dcm", pydicom.uid.JPEGBaseline8Bit),
        ("dx256_jpeg2000.dcm", pydicom.uid.JPEG2000Lossless),
        ("dx256_jpegls.dcm", pydicom.uid.JPEGLSLossless),
        ("dx256_rle.dcm", pydicom.uid.RLELossless),
    ],
)
def test_compressed_transfer_syntaxes_decode_like_the_original(dicom_dir, name, syntax):
    assert pydicom.dcmread(dicom_dir / name).file_meta.TransferSyntaxUID == syntax
    pixels = read_image(dicom_dir / name).pixels
    if name.startswith("dx256"):
        original = read_image(dicom_dir / "dx256_explicit_le.dcm").pixels
        assert np.allclose(pixels, original, atol=1e-6)  # lossless
    else:
        # JPEG baseline: compare with pydicom's own decode of the stored values.
        stored = pydicom.dcmread(dicom_dir / name).pixel_array.astype(np.float32) / 255
        assert np.allclose(pixels, stored, atol=1e-6)


def test_rescale_and_full_window_give_the_image_back(dicom_dir):
    """12-bit stored, slope 2 / intercept -1000, window over the whole range."""
    ds = pydicom.dcmread(dicom_dir / "dx256_12bit_rescale_window.dcm")
    assert ds.BitsStored == 12 and float(ds.RescaleSlope) == 2
    pixels = read_image(dicom_dir / "dx256_12bit_rescale_window.dcm").pixels
    original = read_image(dicom_dir / "dx256_explicit_le.dcm").pixels
    # Stored = 8-bit value * 16, so 255 -> 4080 of 4095: a 0.4% scale, nothing more.
    assert np.allclose(pixels, original * 4080 / 4095, atol=2e-3)


def test_narrow_window_saturates_as_specified(dicom_dir):
    ds = pydicom.dcmread(dicom_dir / "dx256_12bit_narrow_window.dcm")
    pixels = read_image(dicom_dir / "dx256_12bit_narrow_window.dcm").pixels
    values = ds.pixel_array.astype(np.float64) * 2 - 1000
    center, width = float(ds.WindowCenter) - 0.5, float(ds.WindowWidth) - 1
    expected = np.clip((values - center) / width + 0.5, 0, 1)  # PS3.3 C.11.2.1.2.1
    assert np.allclose(pixels, expected, atol=1e-3)
    assert (pixels == 1.0).mean() > 0.2  # bones and soft tissue above the window saturate


def test_voi_lut_sequence_is_applied(dicom_dir):
    ds = pydicom.dcmread(dicom_dir / "dx256_12bit_voi_lut.dcm")
    assert "WindowCenter" not in ds and ds.VOILUTSequence[0].LUTDescriptor[2] == 16
    pixels = read_image(dicom_dir / "dx256_12bit_voi_lut.dcm").pixels
    expected = np.sqrt(ds.pixel_array / 4095)  # the square-root LUT, output 0..65535
    assert np.allclose(pixels, expected, atol=1e-4)
    linear = read_image(dicom_dir / "dx256_explicit_le.dcm").pixels
    assert not np.allclose(pixels, linear, atol=0.05)  # the LUT really changed the image


def test_file_without_pixel_data_is_rejected(dicom_dir, tmp_path):
    ds = pydicom.dcmread(dicom_dir / "nih_dx_no_finding.dcm")
    del ds.PixelData
    ds.save_as(tmp_path / "header_only.dcm")
    with pytest.raises(NoPixelData, match="no pixel data"):
        read_image(tmp_path / "header_only.dcm")


def test_recognised_by_content_not_extension(dicom_dir, tmp_path):
    renamed = tmp_path / "export_0001"  # PACS exports often have no extension
    shutil.copyfile(dicom_dir / "dx256_rle.dcm", renamed)
    assert read_image(renamed).format == "dicom"
    shutil.copyfile(dicom_dir / "dx256_rle.dcm", tmp_path / "looks_like.png")
    assert read_image(tmp_path / "looks_like.png").format == "dicom"


def test_damaged_dicom_raises_image_error(dicom_dir, tmp_path):
    data = (dicom_dir / "dx256_jpeg2000.dcm").read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=r"cut\.dcm"):
        read_image(tmp_path / "cut.dcm")


def test_identifying_fields_never_reach_messages(dicom_dir, tmp_path):
    ds = pydicom.dcmread(dicom_dir / "nih_dx_bodypart_ribcage.dcm")
    ds.PatientName, ds.PatientBirthDate, ds.PatientID = "Mustermann^Erika", "20240101", "MRN-998877"
    ds.save_as(tmp_path / "named.dcm")
    img = read_image(tmp_path / "named.dcm")
    assert img.warnings
    for text in img.warnings:
        assert "Mustermann" not in text and "20240101" not in text and "998877" not in text
    ds.Modality = "CT"
    ds.save_as(tmp_path / "named_ct.dcm")
    with pytest.raises(DicomRejected) as err:
        read_image(tmp_path / "named_ct.dcm")
    assert "Mustermann" not in str(err.value) and "998877" not in str(err.value)
