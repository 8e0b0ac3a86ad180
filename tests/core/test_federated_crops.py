"""Each federated site cuts its own images with its own crop sidecar: the site's folder
freezes the boxes, its training data is cut with them, and what it tells the server is a
method and a count; the server's record says whether the sites prepared images alike.
(The whole federation with a cropped and an uncropped site: test_federated.py, slow.)"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from core.cli.federate_cmd import parse_site, parse_site_crops
from core.cohort.crops import Crop, CropEntry, CropTable, file_sha256, write_sidecar
from core.cohort.images import read_image
from core.cohort.preprocess import PreprocessConfig, preprocess
from core.cohort.source import CohortSource, OutcomeSpec
from core.errors import InputError
from core.federated.crops import crops_note, site_crops
from core.runs.folder import RunFolder
from core.training.config import TrainConfig

DEMO = Path(__file__).resolve().parents[2] / "resources" / "demo_cohort"
OUTCOME = OutcomeSpec("diagnosis", ("PNEUMONIA",), ("NORMAL",))


def _site_table(folder: Path, n: int = 4) -> tuple[Path, list[dict[str, str]]]:
    with open(DEMO / "cohort.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    keep = [r for r in rows if r["diagnosis"] == "NORMAL"][:n]
    keep += [r for r in rows if r["diagnosis"] == "PNEUMONIA"][:n]
    path = folder / "site.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["patient_id", "image", "diagnosis"])
        w.writeheader()
        w.writerows(keep)
    return path, keep


def test_a_site_trains_on_its_own_frozen_boxes(tmp_path, monkeypatch):
    from core.federated.site import Site, site_config, site_train_config

    monkeypatch.setenv("BPD_STUDIO_HOME", str(tmp_path / "home"))
    table, rows = _site_table(tmp_path)
    boxes = [Crop(10 + i, 20, 200 - i, 210, rotation=5.0 * (i % 2)) for i in range(len(rows))]
    entries = [CropEntry(r["image"], file_sha256(DEMO / r["image"]), b)
               for r, b in zip(rows, boxes, strict=True)]  # fmt: skip
    sidecar = write_sidecar(tmp_path / "site.crops.csv", CropTable(tuple(entries[:-1])))
    source = CohortSource(str(table), OUTCOME, images_root=str(DEMO), crops=str(sidecar))
    cfg = TrainConfig(init="random", resolution=32, cv_folds=2, cv_repeats=1, batch_size=4)
    RunFolder.create(tmp_path / "west", site_config("west", 0, source, cfg), {})
    sidecar.unlink()  # the site's folder holds the boxes it trains with
    run = RunFolder.existing(tmp_path / "west")
    assert len(run.crops()) == len(rows) - 1
    assert site_crops(run) == ("manual", len(rows) - 1)

    site = Site.load(str(tmp_path / "west"), site_train_config(cfg.to_json(), threads=1))
    cfg32 = PreprocessConfig(resolution=32)
    data = site.data
    for i, row in enumerate(rows):
        pixels = read_image(DEMO / row["image"]).pixels
        crop = boxes[i] if i < len(rows) - 1 else None  # the last image has no box: whole
        k = data.patient_ids.index(row["patient_id"])
        mine = [r["image"] for r in rows if r["patient_id"] == row["patient_id"]]
        rank = mine.index(row["image"])
        j = int(np.nonzero((data.image_patient == k) & (data.image_rank == rank))[0][0])
        np.testing.assert_array_equal(data.pixels[j], preprocess(pixels, cfg32, crop))


def test_a_joining_site_freezes_its_boxes_without_a_recipe(tmp_path):
    from core.federated.site import site_config

    table, rows = _site_table(tmp_path, 2)
    entry = CropEntry(rows[0]["image"], file_sha256(DEMO / rows[0]["image"]), Crop(5, 5, 100, 90))
    auto = CropEntry(rows[1]["image"], file_sha256(DEMO / rows[1]["image"]),
                     Crop(5, 5, 100, 90, source="auto"))  # fmt: skip
    sidecar = write_sidecar(tmp_path / "s.crops.csv", CropTable((entry, auto)))
    source = CohortSource(str(table), OUTCOME, images_root=str(DEMO), crops=str(sidecar))
    config = site_config("east", 0, source, None)
    assert CropTable.from_json(config["crops"]).for_sha(entry.sha256) == entry.crop
    assert len(config["crops"]) == 1  # the unreviewed suggestion is not used
    assert config["cohort_source"]["crops"] == str(sidecar)
    plain = CohortSource(str(table), OUTCOME, images_root=str(DEMO))
    assert "crops" not in site_config("east", 0, plain, None)


def test_the_record_says_when_sites_prepare_images_differently():
    mixed = crops_note({"north": {"crops": "autobox", "crop-boxes": 40},
                        "south": {"crops": "none", "crop-boxes": 0}})  # fmt: skip
    assert mixed["same"] is False and mixed["sites"] == {"north": "autobox", "south": "none"}
    assert "prepared their images differently" in mixed["note"]
    assert "north: crop boxes, autobox, 40 images" in mixed["note"]
    assert "south: whole images" in mixed["note"]
    alike = crops_note({"a": {"crops": "none"}, "b": {"crops": "none"}})
    assert alike["same"] is True and "alike" in alike["note"]
    older = crops_note({"a": {"crops": "none"}, "b": {}})  # a site that says nothing
    assert older["same"] is False and "b: not said" in older["note"]


def test_site_crops_flags_name_known_sites_and_files(tmp_path):
    table, _ = _site_table(tmp_path, 2)
    sites = [f"north={table}", f"south={table}"]
    with pytest.raises(InputError, match="no --site is called 'west'"):
        parse_site_crops(["west=x.csv"], sites)
    with pytest.raises(InputError, match="write NAME=FILE"):
        parse_site_crops(["north"], sites)
    with pytest.raises(InputError, match="two crop tables"):
        parse_site_crops(["north=a.csv", "north=b.csv"], sites)
    crops = parse_site_crops([f"north={tmp_path / 'missing.csv'}"], sites)
    with pytest.raises(InputError, match="site crop table not found"):
        parse_site(sites[0], str(DEMO), OUTCOME, crops)
    assert parse_site(sites[1], str(DEMO), OUTCOME, crops).cohort.crops is None
