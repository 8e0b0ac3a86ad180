"""benchmarks/crop_effect.py's map-mass shares: the regions and the arithmetic behind the
"With and without crops" table of docs/method.md."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.crop_effect import mass_shares, paired, region_masks
from core.cohort.crops import Crop
from core.explain.overlay import map_to_image


def test_a_flat_map_shares_out_as_the_areas():
    masks = region_masks((100, 200), {"hand": Crop(50, 20, 150, 80), "none": None})
    shares = mass_shares(np.ones((100, 200), np.float32), masks)
    assert shares["box:hand"] == pytest.approx(100 * 60 / (100 * 200))
    assert shares["box:hand"] == pytest.approx(shares["box:hand_area"])
    assert shares["band"] == pytest.approx(1 - 0.8 * 0.8)  # 10% of width and height per side
    assert shares["box:none"] is None and shares["box:none_area"] is None


def test_a_cropped_models_map_lies_inside_its_box_on_the_uncropped_image():
    crop = Crop(40, 10, 120, 90)  # the model saw this part, at 32 x 32
    cam = np.zeros((32, 32), np.float32)
    cam[:, :16] = 1.0  # its left half
    values = map_to_image(cam, (100, 160), None, crop)
    left_half = Crop(40, 10, 80, 90)
    shares = mass_shares(values, region_masks((100, 160), {"box": crop, "left": left_half}))
    assert shares["box:box"] == pytest.approx(1.0)
    assert shares["box:left"] > 0.95  # bilinear spill across the middle only
    assert shares["band"] == pytest.approx(0.0)  # the box stays clear of the outer 10%


def test_a_flat_map_has_no_shares_and_pairs_skip_it():
    masks = region_masks((10, 10), {"b": Crop(2, 2, 8, 8)})
    assert mass_shares(np.zeros((10, 10)), masks)["box:b"] is None
    a = [{"patient_id": "1", "band": 0.4}, {"patient_id": "2", "band": 0.5}]
    b = [{"patient_id": "1", "band": 0.1}, {"patient_id": "2", "band": None}]
    assert paired(a, b, "band") == {"n": 1, "mean_difference": pytest.approx(-0.3),
                                    "sd_difference": 0.0, "b_higher": 0}  # fmt: skip
