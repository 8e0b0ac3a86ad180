"""Overlays written to files: the radiograph's own size and aspect, a colour bar, the
caption and the scaling named; shared vs per-image scaling; all-zero maps said; a DICOM
header shown without identifying fields."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.cohort.images import read_image
from core.explain import overlay


def _cam(size=32):
    """A map scaled to its own maximum: hot in the upper-left quarter."""
    cam = np.zeros((size, size), np.float32)
    cam[: size // 2, : size // 2] = 1.0
    return cam


def test_map_goes_back_onto_the_radiograph_geometry():
    cam = _cam()
    wide = overlay.map_to_image(cam, (300, 500))  # squashed to 32 x 32 by the model: undone
    assert wide.shape == (300, 500)
    assert wide[10, 10] == pytest.approx(1.0) and wide[290, 490] == pytest.approx(0.0)
    assert wide[10, 240] > 0.5 > wide[10, 260]  # the hot half ends at half the width
    cropped = overlay.map_to_image(cam, (300, 500), center_crop=1.0)
    assert np.isnan(cropped[:, :99]).all() and np.isnan(cropped[:, 401:]).all()
    assert np.isfinite(cropped[:, 100:400]).all()  # the centred 300 x 300 square the model saw


def test_shared_scaling_keeps_a_weak_map_weak():
    cam = _cam()
    assert overlay.scaled_map(cam, 0.2, None).max() == pytest.approx(1.0)  # per image
    assert overlay.scaled_map(cam, 0.2, 0.8).max() == pytest.approx(0.25)  # shared
    assert overlay.scaled_map(cam, 0.0, 0.0).max() == 0.0
    assert "per-image" in overlay.scaling_text("image")
    assert "0.8" in overlay.scaling_text("shared", 0.8)
    with pytest.raises(ValueError):
        overlay.scaling_text("global")


def test_written_overlay_has_the_image_size_colour_bar_and_caption(images_dir, tmp_path):
    pixels = read_image(images_dir / "person1_bacteria_1.jpeg").pixels
    h, w = pixels.shape
    caption = overlay.Caption("P-7", prob=0.07, threshold=0.5, label=1, fold="r0-f1")
    assert "FN" in " ".join(caption.lines()) and "p = 0.070" in caption.lines()[0]
    out = overlay.write_overlay(tmp_path / "o.png", pixels, _cam(), 0.3, caption=caption,
                                scaling="shared", shared_peak=0.6, opacity=0.5)  # fmt: skip
    img = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert img.shape[1] > w and img.shape[0] > h  # colour bar right, caption below
    # the hot quarter is coloured at half the shared scale (green-ish), the rest blue-ish
    r, g, b = img[h // 8, w // 8]
    assert g > r and g > b
    r, g, b = img[7 * h // 8, 7 * w // 8]
    assert b > r
    # the colour bar runs from red (top) to dark blue (bottom)
    bar_x = w + max(4, round(min(h, w) / 40) // 2) + 2
    top, bottom = img[round(min(h, w) / 40) + 2, bar_x], img[h - 20, bar_x]
    assert top[0] > top[2] and bottom[2] > bottom[0]
    # per-image scaling of the same map: the hot quarter is red
    out = overlay.write_overlay(tmp_path / "p.png", pixels, _cam(), 0.3, caption=caption,
                                scaling="image", opacity=0.5)  # fmt: skip
    r, g, b = np.asarray(Image.open(out).convert("RGB")).astype(int)[h // 8, w // 8]
    assert r > g and r > b


def test_all_zero_map_is_said_and_not_painted(images_dir, tmp_path):
    pixels = read_image(images_dir / "IM-0115-0001.jpeg").pixels
    h, w = pixels.shape
    zero = np.zeros((32, 32), np.float32)
    assert overlay.is_empty(zero, 0.0)
    image = overlay.render_overlay(pixels, overlay.map_to_image(zero, (h, w)),
                                   caption=overlay.Caption("N-1"), scaling="x", opacity=0.6,
                                   empty=True)  # fmt: skip
    rgb = np.asarray(image)[:h, :w]
    assert (rgb[..., 0] == rgb[..., 2]).all()  # grey: no blue wash over the radiograph
    # the caption band holds the yellow warning line
    band = np.asarray(image)[h:]
    assert ((band[..., 0] > 200) & (band[..., 2] < 120)).any()


def test_dicom_details_leave_out_identifying_fields(dicom_dir, images_dir):
    from core.explain.review import dicom_details

    path = dicom_dir / "rsna_cr_jpeg_baseline_mono2.dcm"
    fields = dict(dicom_details(path))
    assert fields["Modality"] == "CR" and fields["Rows"] == "1024"
    text = " ".join(f"{k} {v}" for k, v in fields.items())
    assert "16d7f894" not in text and "1901" not in text  # its PatientName/ID, StudyDate
    assert not any("patient" in k.lower() or "date" in k.lower() for k in fields)
    assert dicom_details(images_dir / "IM-0115-0001.jpeg") is None
