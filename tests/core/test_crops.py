"""Per-image crop box and rotation (core.cohort.crops): one preprocessing for training,
prediction and explanation on real demo radiographs; overlays mapped back onto the
uncropped image; bad sidecar rows named by file and row."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from core.cohort.crops import (
    Crop,
    CropEntry,
    CropTable,
    apply_crop,
    crop_for_file,
    file_sha256,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)
from core.cohort.images import read_image
from core.cohort.preprocess import PreprocessConfig
from core.errors import ImageError, InputError
from tests.core.test_final_model import tiny_table


def _image_paths(table: Path, root: Path) -> list[Path]:
    with open(table, encoding="utf-8", newline="") as fh:
        return [root / r["image"] for r in csv.DictReader(fh)]


def _boxes_for(paths: list[Path], rotations=(0.0, 12.5, -30.0, 90.0)) -> CropTable:
    """A different box and rotation per image: the middle of each radiograph."""
    entries = []
    for i, path in enumerate(paths):
        h, w = read_image(path).pixels.shape
        x0, y0 = w // 8 + 3 * i, h // 10 + 2 * i
        crop = Crop(x0, y0, w - w // 6, h - h // 7, rotation=rotations[i % len(rotations)])
        entries.append(CropEntry(path.name, file_sha256(path), crop))
    return CropTable(tuple(entries))


@pytest.fixture()
def cohort_with_boxes(tmp_path, monkeypatch):
    monkeypatch.setenv("BPD_STUDIO_HOME", str(tmp_path / "home"))
    table, root = tiny_table(tmp_path, 2)
    paths = _image_paths(table, root)
    boxes = _boxes_for(paths)
    sidecar = write_sidecar(sidecar_path(table), boxes)
    return table, root, paths, sidecar


def test_integer_box_without_rotation_is_an_exact_slice():
    img = np.random.default_rng(0).random((50, 70), dtype=np.float32)
    out = apply_crop(img, Crop(5, 7, 65, 43))
    np.testing.assert_array_equal(out, img[7:43, 5:65])
    # the general (sampling) path agrees with the slice for a box a hair off the grid
    near = apply_crop(img, Crop(5.0001, 7, 65.0001, 43))
    np.testing.assert_allclose(near, out, atol=1e-3)


def test_rotation_turns_the_box_clockwise_about_its_centre():
    img = np.zeros((40, 40), dtype=np.float32)
    img[14, 26] = 1.0  # right of and above the centre (20, 20)
    # a box turned 90 degrees clockwise on the radiograph: its top edge lies on the
    # image's right side (x = 30), so the point 4 px from that side, 6 px above the
    # centre, is 4 px below the box's top and 4 px right of its left edge
    out = apply_crop(img, Crop(10, 10, 30, 30, rotation=90))
    v, u = np.unravel_index(np.argmax(out), out.shape)
    assert (u, v) == (4, 3) and out[v, u] == pytest.approx(1.0)
    # -90: the top edge lies on the left side instead
    v, u = np.unravel_index(np.argmax(apply_crop(img, Crop(10, 10, 30, 30, rotation=-90))),
                            (20, 20))  # fmt: skip
    assert (u, v) == (15, 16)


def test_box_outside_the_image_is_an_image_error():
    with pytest.raises(ImageError, match="outside the 30 x 20 image"):
        apply_crop(np.zeros((20, 30), np.float32), Crop(0, 0, 40, 10))


def test_training_prediction_and_explanation_see_the_same_pixels(cohort_with_boxes):
    from core.cohort.loader import load_source
    from core.cohort.prepare import prepare_images
    from core.cohort.source import CohortSource, OutcomeSpec
    from core.explain.oof import _first_readable
    from core.predict.models import Predictor
    from core.predict.predict import load_pixels

    table, root, paths, sidecar = cohort_with_boxes
    cfg = PreprocessConfig(resolution=48)
    source = CohortSource(str(table), OutcomeSpec("diagnosis", ("PNEUMONIA",), ("NORMAL",)),
                          images_root=str(root), crops=str(sidecar))  # fmt: skip
    boxes = source.crop_table().used()
    cohort = load_source(source)
    whole = prepare_images(cohort, cfg, workers=1)
    trained = prepare_images(cohort, cfg, workers=1, crops=boxes)
    again = prepare_images(cohort, cfg, workers=1, crops=boxes)  # from the cache
    assert trained.n_decoded == 4 and again.n_cached == 4 and again.n_decoded == 0
    np.testing.assert_array_equal(again.pixels, trained.pixels)
    predictor = Predictor(models=[], preprocess=cfg, threshold=0.5, kind="ensemble",
                          source=Path("."), crops=boxes)  # fmt: skip
    for i, path in enumerate(paths):
        crop = crop_for_file(path, boxes)
        assert crop is not None and crop == boxes.entries[i].crop
        predicted = load_pixels(path, predictor, crop)
        _, explained, explained_crop = _first_readable([path], cfg, boxes)
        np.testing.assert_array_equal(predicted, trained.pixels[i])
        np.testing.assert_array_equal(explained, trained.pixels[i])
        assert explained_crop == crop
        # the box changed what the model sees (the cache did not hand back whole images)
        assert not np.array_equal(trained.pixels[i], whole.pixels[i])


def test_overlay_peak_lands_on_the_right_pixel_of_the_uncropped_image():
    from core.explain.overlay import map_to_image

    shape = (300, 400)
    for crop in (Crop(100, 50, 300, 250), Crop(120, 60, 280, 220, rotation=90),
                 Crop(150, 80, 330, 230, rotation=-25)):  # fmt: skip
        cam = np.zeros((64, 64), np.float32)
        cam[16, 48] = 1.0  # upper right quarter of what the model saw
        values = map_to_image(cam, shape, None, crop)
        y, x = np.unravel_index(np.nanargmax(values), shape)
        u = np.array((48 + 0.5) / 64 * crop.width)
        v = np.array((16 + 0.5) / 64 * crop.height)
        ex, ey = crop.to_original(u, v)
        assert abs(x + 0.5 - ex) <= 1.5 and abs(y + 0.5 - ey) <= 1.5, (crop, x, y, ex, ey)
        # nothing is drawn where the model saw nothing
        assert np.isnan(values[0, 0]) and np.isnan(values[-1, -1])
        cx, cy = round((crop.x0 + crop.x1) / 2), round((crop.y0 + crop.y1) / 2)
        assert np.isfinite(values[cy, cx])
    # without rotation, the map covers exactly the box
    values = map_to_image(np.ones((32, 32), np.float32), shape, None, Crop(100, 50, 300, 250))
    inside = np.isfinite(values)
    assert inside[50:250, 100:300].all() and inside.sum() == 200 * 200


def test_overlay_of_a_real_radiograph_is_drawn_at_its_own_size(tmp_path, images_dir):
    from PIL import Image

    from core.explain.overlay import Caption, write_overlay

    path = images_dir / "IM-0115-0001.jpeg"
    pixels = read_image(path).pixels
    h, w = pixels.shape
    crop = Crop(w // 4, h // 5, w - w // 4, h - h // 6, rotation=8)
    cam = np.zeros((32, 32), np.float32)
    cam[16, 16] = 1.0
    out = write_overlay(tmp_path / "o.png", pixels, cam, 1.0, caption=Caption("A"),
                        scaling="image", crop=crop)  # fmt: skip
    img = np.asarray(Image.open(out).convert("RGB"))
    assert img.shape[1] > w and img.shape[0] > h  # the whole radiograph plus bar and caption
    # a corner far outside the box keeps the radiograph's own grey (no colour)
    r, g, b = img[5, 5].astype(int)
    assert r == g == b


def _write_rows(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


GOOD = {"image": "a.png", "sha256": "ab" * 32, "x0": "1", "y0": "2", "x1": "50", "y1": "60",
        "rotation": "0", "source": "manual"}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"x1": "wide"}, "must be numbers"),
        ({"x1": "0"}, "x1 > x0"),
        ({"sha256": "1234"}, "not a SHA-256"),
        ({"source": "guessed"}, "source must be one of"),
        ({"rotation": "400"}, "between -180 and 180"),
        ({"y0": ""}, "missing y0"),
    ],
)
def test_bad_sidecar_row_names_file_and_row(tmp_path, change, message):
    other = {**GOOD, "sha256": "cd" * 32}
    path = _write_rows(tmp_path / "t.csv.crops.csv", [other, {**GOOD, **change}])
    with pytest.raises(InputError, match=message) as info:
        read_sidecar(path)
    assert info.value.file == str(path) and info.value.row == 2
    assert str(path) in str(info.value) and "row 2" in str(info.value)


def test_same_image_twice_and_missing_columns_are_errors(tmp_path):
    path = _write_rows(tmp_path / "dup.csv", [GOOD, {**GOOD, "image": "b.png"}])
    with pytest.raises(InputError, match="has a box already in data row 1") as info:
        read_sidecar(path)
    assert info.value.row == 2
    bad = _write_rows(tmp_path / "cols.csv", [{k: v for k, v in GOOD.items() if k != "x1"}])
    with pytest.raises(InputError, match="lacks column"):
        read_sidecar(bad)


def test_automatic_boxes_are_used_only_once_accepted(tmp_path):
    rows = [{**GOOD, "source": "auto"}, {**GOOD, "sha256": "cd" * 32, "source": "manual"}]
    table = read_sidecar(_write_rows(tmp_path / "s.csv", rows))
    assert table.for_sha("ab" * 32) is None and table.for_sha("cd" * 32) is not None
    assert len(table.used()) == 1
    accepted = table.accepted()
    assert accepted.for_sha("ab" * 32).source == "accepted" and len(accepted.used()) == 2
    # the round trip keeps every box and its source
    again = read_sidecar(write_sidecar(tmp_path / "again.csv", accepted))
    assert again == CropTable(accepted.entries, str(tmp_path / "again.csv"))


def test_run_config_records_the_sidecar_boxes(cohort_with_boxes, tmp_path):
    from core.cohort.source import CohortSource, OutcomeSpec
    from core.runs.run_config import RunConfig
    from core.training.config import TrainConfig

    table, root, _, sidecar = cohort_with_boxes
    source = CohortSource(str(table), OutcomeSpec("diagnosis", ("PNEUMONIA",)),
                          images_root=str(root), crops=str(sidecar))  # fmt: skip
    config = RunConfig(TrainConfig(), source).with_crops()
    assert len(config.crops) == 4
    data = config.to_json()
    assert data["cohort_source"]["crops"] == str(sidecar) and len(data["crops"]) == 4
    # the sidecar may change later: the recorded boxes stay the run's
    sidecar.unlink()
    back = RunConfig.from_json(data)
    assert back.crops == config.crops and back.with_crops() is back
    assert "crops" not in RunConfig(TrainConfig(), source.replace(crops=None)).to_json()


def test_a_recorded_box_at_the_image_edge_reads_back_from_json():
    """config.json stores box edges as numbers: 0.0 at the top-left edge is a value (it
    once read as 'crop row is missing y0', so explain, predict and resume failed)."""
    sha = "cd" * 32
    table = CropTable((CropEntry("a.png", sha, Crop(0, 0.0, 90, 120, source="accepted")),))
    back = CropTable.from_json(json.loads(json.dumps(table.to_json())))
    assert back.for_sha(sha) == table.for_sha(sha)
    with pytest.raises(InputError, match="missing y0"):
        CropTable.from_json([{**table.to_json()[0], "y0": None}])
