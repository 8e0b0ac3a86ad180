"""Deskew of photographed films (core.cohort.deskew, core.cohort.perspective): real demo
radiographs and DICOMs "photographed" into known quads on a darker or brighter surround
have their corners found; untouched digital radiographs give no border; the quad is
stored in the sidecar (older sidecars still load), applied before the box the same way
in training and prediction, and Grad-CAM maps go back onto the photo."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from core import paths
from core.cli.main import main
from core.cohort.crops import (
    FIELDS,
    Crop,
    CropEntry,
    CropTable,
    apply_crop,
    file_sha256,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)
from core.cohort.deskew import Border, deskew, find_border
from core.cohort.images import read_image
from core.cohort.perspective import to_image, to_upright, upright_size
from core.cohort.preprocess import PreprocessConfig, preprocess
from core.errors import ImageError, InputError
from tests.core.photographs import corner_errors, photograph, random_quad

QUAD = (60.0, 40.0, 330.0, 62.0, 345.0, 300.0, 48.0, 285.0)  # a film seen from the left


def _demo(n: int, step: int = 37) -> list[np.ndarray]:
    root = paths.demo_cohort_table().parent
    files = sorted((root / "images").glob("*/*"))[::step][:n]
    return [read_image(f).pixels for f in files]


def test_homography_takes_the_upright_grid_onto_the_quad_and_back():
    h, w = upright_size(QUAD)
    assert (h, w) == (242, 284)  # the mean of opposite sides (245.3, 238.5; 270.9, 297.4)
    u = np.array([0.0, w, w, 0.0, w / 2])
    v = np.array([0.0, 0.0, h, h, h / 2])
    x, y = to_image(QUAD, u, v)
    np.testing.assert_allclose(np.c_[x[:4], y[:4]].ravel(), QUAD, atol=1e-9)
    back_u, back_v = to_upright(QUAD, x, y)
    np.testing.assert_allclose(back_u, u, atol=1e-9)
    np.testing.assert_allclose(back_v, v, atol=1e-9)


@pytest.mark.parametrize(
    ("quad", "message"),
    [((0, 0, 10, 0, 10), "8 numbers"), ((0, 0, 0, 10, 10, 10, 10, 0), "clockwise"),
     ((0, 0, 10, 0, 2, 2, 0, 10), "convex")],
)  # fmt: skip
def test_a_bad_quad_says_what_is_wrong(quad, message):
    with pytest.raises(InputError, match=message):
        Crop(0, 0, 5, 5, quad=quad)


@pytest.mark.parametrize("surround", ["dark", "bright"])
def test_corners_of_photographed_demo_radiographs_are_found(surround):
    rng = np.random.default_rng(3 if surround == "dark" else 4)
    errors = []
    for i, radiograph in enumerate(_demo(3)):
        quad = random_quad(rng, (360, 420))
        photo = photograph(radiograph, quad, (360, 420), surround=surround, seed=i)
        border = find_border(photo)
        assert border is not None, f"image {i}: no border found"
        assert border.confidence >= 0.7
        errors.append(corner_errors(border.quad, quad))
    errors = np.concatenate(errors)
    assert errors.mean() < 1.5 and errors.max() < 4, errors


def test_a_photographed_dicom_with_gradient_and_blur_is_found(dicom_dir):
    radiograph = read_image(dicom_dir / "nih_dx_no_finding.dcm").pixels
    quad = random_quad(np.random.default_rng(11), (480, 560), tilt=0.09)
    photo = photograph(radiograph, quad, (480, 560), blur=2.0, lighting=0.3, noise=0.03)
    border = find_border(photo)
    assert border is not None
    assert corner_errors(border.quad, quad).max() < 4


def test_digital_radiographs_have_no_border(dicom_dir, images_dir):
    """A false border would warp a good image: none on real DICOMs, PNGs, JPEGs."""
    files = [*sorted(dicom_dir.glob("*.dcm")), *sorted(images_dir.glob("*"))]
    read = 0
    for path in files:
        try:
            pixels = read_image(path).pixels
        except (ImageError, InputError):
            continue  # files kept to test that they are refused (a CT, a rib series)
        read += 1
        assert find_border(pixels) is None, path.name
    assert read >= 10
    for i, pixels in enumerate(_demo(12, step=19)):
        assert find_border(pixels) is None, f"demo image {i}"


def test_no_border_on_a_flat_or_tiny_image():
    assert find_border(np.full((200, 240), 0.5, np.float32)) is None
    assert find_border(np.zeros((20, 20), np.float32)) is None


def test_deskew_undoes_the_photograph():
    radiograph = _demo(1)[0]
    quad = random_quad(np.random.default_rng(5), (360, 420))
    photo = photograph(radiograph, quad, (360, 420), blur=0.5, lighting=0.0, noise=0.0)
    upright = deskew(photo, tuple(quad.ravel()))
    h, w = upright_size(quad.ravel())
    assert upright.shape == (h, w)
    # back at the radiograph's size, the upright photo is the radiograph (screen levels)
    from PIL import Image

    again = np.asarray(Image.fromarray(upright).resize(radiograph.shape[::-1]), np.float32)
    expected = 0.14 + 0.8 * radiograph
    inner = (slice(10, -10), slice(10, -10))
    assert np.abs(again - expected)[inner].mean() < 0.03
    assert np.corrcoef(again[inner].ravel(), expected[inner].ravel())[0, 1] > 0.97


def test_sidecar_keeps_the_quad_and_an_older_sidecar_still_loads(tmp_path):
    sha = "a" * 64
    crop = Crop(10, 12, 200, 180, rotation=3.0, source="accepted", quad=QUAD)
    path = write_sidecar(tmp_path / "t.csv.crops.csv", CropTable((CropEntry("x.png", sha, crop),
                                                                   CropEntry("y.png", "b" * 64,
                                                                             Crop(1, 2, 30, 40))))
                         )  # fmt: skip
    back = read_sidecar(path)
    assert back.for_sha(sha) == crop and back.for_sha("b" * 64).quad is None
    # a run's config.json keeps it too (the boxes as JSON rows)
    assert CropTable.from_json(json.loads(json.dumps(back.to_json()))).for_sha(sha) == crop
    assert "q0x" in path.read_text().splitlines()[0]
    # a sidecar written before quads existed: the 8 original columns only
    old = tmp_path / "old.crops.csv"
    old.write_text(",".join(FIELDS) + "\n" + f"x.png,{sha},10,12,200,180,0,manual\n")
    assert read_sidecar(old).for_sha(sha) == Crop(10, 12, 200, 180)
    # half a quad is named with its file and row
    text = path.read_text().splitlines()
    header = text[0].split(",")
    cells = text[1].split(",")
    cells[header.index("q2y")] = ""
    bad = tmp_path / "bad.crops.csv"
    bad.write_text("\n".join([text[0], ",".join(cells)]) + "\n")
    with pytest.raises(InputError, match="q2y") as info:
        read_sidecar(bad)
    assert "bad.crops.csv" in str(info.value) and "row 1" in str(info.value)


def test_cache_key_of_a_box_without_quad_is_unchanged_and_a_quad_changes_it():
    crop = Crop(10, 12, 200, 180, rotation=3.0)
    old = json.dumps({"x0": 10.0, "y0": 12.0, "x1": 200.0, "y1": 180.0, "rotation": 3.0},
                     sort_keys=True)  # fmt: skip
    assert crop.key() == hashlib.sha256(old.encode()).hexdigest()[:12]
    assert Crop(10, 12, 200, 180, rotation=3.0, quad=QUAD).key() != crop.key()


def test_quad_is_applied_before_the_box_and_rotation():
    photo = photograph(_demo(1)[0], np.reshape(QUAD, (4, 2)), (340, 400), noise=0.0)
    box = Crop(30, 20, 250, 220, rotation=10.0, quad=QUAD)
    once = apply_crop(photo, box)  # one sampling through both maps
    twice = apply_crop(deskew(photo, QUAD), Crop(30, 20, 250, 220, rotation=10.0))
    assert once.shape == twice.shape == (200, 220)
    assert np.abs(once - twice)[5:-5, 5:-5].mean() < 0.01  # two samplings blur a little
    # a box reaching beyond the upright grid is refused, naming that grid
    with pytest.raises(ImageError, match="upright"):
        apply_crop(photo, Crop(0, 0, 300, 100, quad=QUAD))


def test_training_and_prediction_see_the_same_deskewed_pixels(tmp_path, monkeypatch):
    from PIL import Image

    from core.cohort.loader import load_source
    from core.cohort.prepare import prepare_images
    from core.cohort.source import CohortSource, OutcomeSpec
    from core.predict.models import Predictor
    from core.predict.predict import load_pixels

    monkeypatch.setenv("BPD_STUDIO_HOME", str(tmp_path / "home"))
    rng = np.random.default_rng(8)
    rows, entries = ["patient_id,image,diagnosis"], []
    for i, radiograph in enumerate(_demo(4, step=50)):
        quad = random_quad(rng, (300, 340))
        photo = photograph(radiograph, quad, (300, 340), seed=i)
        name = f"photo{i}.png"
        Image.fromarray((photo * 255).astype(np.uint8)).save(tmp_path / name)
        rows.append(f"P{i},{name},{'PNEUMONIA' if i % 2 else 'NORMAL'}")
        crop = Crop(8, 6, 150, 140, rotation=4.0, source="manual", quad=tuple(quad.ravel()))
        entries.append(CropEntry(name, file_sha256(tmp_path / name), crop))
    table = tmp_path / "photos.csv"
    table.write_text("\n".join(rows) + "\n")
    boxes = CropTable(tuple(entries))
    sidecar = write_sidecar(sidecar_path(table), boxes)
    cfg = PreprocessConfig(resolution=40)
    source = CohortSource(str(table), OutcomeSpec("diagnosis", ("PNEUMONIA",), ("NORMAL",)),
                          crops=str(sidecar))  # fmt: skip
    cohort = load_source(source)
    trained = prepare_images(cohort, cfg, workers=1, crops=source.crop_table().used())
    flat = prepare_images(cohort, cfg, workers=1,
                          crops=CropTable(tuple(CropEntry(e.image, e.sha256, Crop(8, 6, 150, 140,
                                                                                  rotation=4.0))
                                                for e in entries)))  # fmt: skip
    predictor = Predictor(models=[], preprocess=cfg, threshold=0.5, kind="ensemble",
                          source=tmp_path, crops=boxes)  # fmt: skip
    for i, entry in enumerate(entries):
        path = tmp_path / entry.image
        predicted = load_pixels(path, predictor, entry.crop)
        np.testing.assert_array_equal(predicted, trained.pixels[i])
        direct = preprocess(read_image(path).pixels, cfg, entry.crop)
        np.testing.assert_array_equal(direct, trained.pixels[i])
        # the cache did not hand back the same box without the deskew
        assert not np.array_equal(trained.pixels[i], flat.pixels[i])


def test_overlay_peak_lands_on_the_matching_point_of_the_photo():
    """A bright dot on the photo goes forward through deskew, box and resize into the
    model's input; a map peaked where the dot landed comes back onto the dot."""
    from core.explain.overlay import map_to_image

    shape = (340, 400)
    base = photograph(_demo(1)[0], np.reshape(QUAD, (4, 2)), shape, noise=0.0) * 0.2
    cfg = PreprocessConfig(resolution=64)
    cases = [(Crop(20, 15, 260, 225, quad=QUAD), (250.5, 120.5)),
             (Crop(30, 20, 250, 220, rotation=-12, quad=QUAD), (150.5, 200.5))]  # fmt: skip
    for crop, (dx, dy) in cases:
        photo = base.copy()
        yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]] + 0.5
        photo += np.exp(-((xx - dx) ** 2 + (yy - dy) ** 2) / (2 * 3.0**2)).astype(np.float32)
        seen = preprocess(np.clip(photo, 0, 1), cfg, crop).astype(np.float32)
        i, j = np.unravel_index(int(np.argmax(seen)), seen.shape)
        cam = np.zeros((64, 64), np.float32)
        cam[i, j] = 1.0
        values = map_to_image(cam, shape, None, crop)
        y, x = np.unravel_index(int(np.nanargmax(values)), shape)
        # within one model-input pixel (about 4 photo pixels here) of the dot
        assert np.hypot(x + 0.5 - dx, y + 0.5 - dy) <= 4.0, (crop, x, y)
        # and exactly where the inverse homography sends the map's peak
        u = np.array((j + 0.5) / 64 * crop.width)
        v = np.array((i + 0.5) / 64 * crop.height)
        ex, ey = crop.to_original(u, v)
        assert abs(x + 0.5 - ex) <= 1.5 and abs(y + 0.5 - ey) <= 1.5
        # nothing is drawn outside the quad, where the model saw nothing
        assert np.isnan(values[5, 5]) and np.isnan(values[-5, -5])


def test_cli_writes_suggestions_per_image_and_keeps_a_persons_box(tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(21)
    radiographs = _demo(3, step=61)
    quads = []
    rows = ["patient_id,image,diagnosis"]
    for i, radiograph in enumerate(radiographs):
        name = f"img{i}.png"
        if i < 2:
            quads.append(random_quad(rng, (330, 380)))
            photo = photograph(radiograph, quads[-1], (330, 380), seed=i)
        else:
            photo = radiograph  # a digital radiograph: nothing to find
        Image.fromarray((photo * 255).astype(np.uint8)).save(tmp_path / name)
        rows.append(f"P{i},{name},NORMAL")
    table = tmp_path / "photos.csv"
    table.write_text("\n".join(rows) + "\n")
    assert main(["cohort", "deskew", str(table)]) == 0
    out = capsys.readouterr().out
    assert "found      img0.png" in out and "found      img1.png" in out
    assert "not found  img2.png" in out and "until then nothing is deskewed" in out
    boxes = read_sidecar(sidecar_path(table))
    assert len(boxes) == 2 and len(boxes.used()) == 0  # suggestions only
    for i in range(2):
        crop = boxes.entry(file_sha256(tmp_path / f"img{i}.png")).crop
        assert crop.source == "auto" and corner_errors(crop.quad, quads[i]).max() < 4
        assert (crop.x0, crop.y0) == (0, 0)
        assert (crop.height, crop.width) == upright_size(crop.quad)
    # `autobox --accept` does not apply an unseen border
    assert boxes.accepted().used() == CropTable()
    # a person's box on img0 is kept on the next pass
    sha0 = file_sha256(tmp_path / "img0.png")
    mine = Crop(5, 5, 100, 100, source="manual")
    write_sidecar(sidecar_path(table), boxes.with_entry(CropEntry("img0.png", sha0, mine)))
    assert main(["cohort", "deskew", str(table)]) == 0
    assert "kept       img0.png" in capsys.readouterr().out
    assert read_sidecar(sidecar_path(table)).for_sha(sha0) == mine


def test_a_border_as_a_crop_covers_the_upright_image():
    border = Border(QUAD, 0.9)
    crop = border.crop()
    assert crop.source == "auto" and not crop.used
    assert (crop.height, crop.width) == upright_size(QUAD)


def test_autobox_after_deskew_keeps_the_border_and_boxes_the_upright_image(tmp_path):
    from core.cohort.chest_box import autobox_images, find_chest_box

    radiograph = _demo(1, step=61)[0]
    quad = np.asarray(QUAD).reshape(4, 2)
    photo = photograph(radiograph, quad, (330, 380), seed=3)
    path = tmp_path / "photo.png"
    from PIL import Image

    Image.fromarray((photo * 255).astype(np.uint8)).save(path)
    border = find_border(read_image(path).pixels)
    assert border is not None
    h, w = upright_size(border.quad)
    sha = file_sha256(path)
    suggested = CropTable().with_entry(
        CropEntry("photo.png", sha, Crop(0, 0, w, h, source="auto", quad=border.quad))
    )
    crop = autobox_images([("photo.png", path)], suggested).table.entry(sha).crop
    assert crop.source == "auto" and crop.quad == border.quad
    # the box is the chest box of the upright image, not of the photo
    upright = deskew(read_image(path).pixels, border.quad)
    expected = find_chest_box(upright).crop
    assert (crop.x0, crop.y0, crop.x1, crop.y1) == (
        expected.x0,
        expected.y0,
        expected.x1,
        expected.y1,
    )
    assert crop.x1 <= w and crop.y1 <= h
