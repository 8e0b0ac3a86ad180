"""A run trained with crop boxes (bpd train --crops) records them in config.json, and
bpd predict / bpd explain cut the same images the same way from that record, even after
the sidecar is gone. Real demo radiographs, a tiny 32 px run."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from core.cli.main import main
from core.cohort.crops import Crop, CropEntry, CropTable, file_sha256, sidecar_path, write_sidecar
from core.cohort.images import read_image
from core.cohort.preprocess import PreprocessConfig, preprocess, to_model_input
from tests.core.test_final_model import tiny_table, train_tiny

pytestmark = pytest.mark.slow  # trains a tiny run


@pytest.fixture(scope="module")
def cropped_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("croprun")
    table, root = tiny_table(tmp, 6)
    with open(table, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    entries = []
    for i, row in enumerate(rows):
        path = root / row["image"]
        h, w = read_image(path).pixels.shape
        source = "auto" if i == 0 else "manual"  # an unreviewed suggestion: not used
        crop = Crop(w // 10, h // 8, w - w // 10, h - h // 12, rotation=(i % 3 - 1) * 7.0,
                    source=source)  # fmt: skip
        entries.append(CropEntry(row["image"], file_sha256(path), crop))
    sidecar = write_sidecar(sidecar_path(table), CropTable(tuple(entries)))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BPD_STUDIO_HOME", str(tmp / "home"))
        run = train_tiny(tmp, "--crops", str(sidecar), "--no-report")
        sidecar.unlink()  # predict and explain must use the run's record, not the sidecar
        yield run, rows, root, entries


def test_run_records_the_boxes_it_trained_with(cropped_run):
    run, _, _, entries = cropped_run
    config = json.loads((run / "config.json").read_text())
    recorded = CropTable.from_json(config["crops"])
    assert len(recorded) == 11  # the automatic suggestion was not used
    assert recorded.for_sha(entries[0].sha256) is None
    for e in entries[1:]:
        assert recorded.for_sha(e.sha256) == e.crop
    assert config["cohort_source"]["crops"].endswith(".crops.csv")


def _fold_models(run):
    from core.runs.folder import RunFolder

    folder = RunFolder(run)
    config = folder.config()
    return [folder.fold_model(f.fold_id, config) for f in folder.finished_folds()]


def test_predict_cuts_a_training_image_as_training_did(cropped_run, tmp_path):
    run, rows, root, entries = cropped_run
    paths = [root / rows[i]["image"] for i in (1, 7)]
    out = tmp_path / "pred.csv"
    cam = tmp_path / "cam"
    assert main(["predict", str(run), *map(str, paths), "--out", str(out), "--cam", str(cam),
                 "--quiet"]) == 0  # fmt: skip
    probs = [float(r["prob"]) for r in csv.DictReader(out.open(encoding="utf-8"))]
    models = _fold_models(run)
    cfg = PreprocessConfig(resolution=32)
    for path, i, prob in zip(paths, (1, 7), probs, strict=True):
        x = to_model_input(preprocess(read_image(path).pixels, cfg, entries[i].crop))[None, None]
        with torch.no_grad():
            expected = np.mean([float(torch.sigmoid(m.eval()(x))[0]) for m in models])
        assert prob == pytest.approx(expected, abs=1e-6)
    assert len(list(cam.glob("*_cam.png"))) == 2


def test_explain_uses_the_recorded_box(cropped_run):
    from core.explain.oof import explain_oof

    run, rows, root, entries = cropped_run
    e = explain_oof(run, rows[2]["patient_id"])
    assert e.crop == entries[2].crop
    expected = preprocess(read_image(root / rows[2]["image"]).pixels,
                          PreprocessConfig(resolution=32), entries[2].crop)  # fmt: skip
    np.testing.assert_array_equal(e.gray, expected)
    out = run / "explained"
    assert main(["explain", str(run), "--patients", rows[2]["patient_id"], "--out",
                 str(out)]) == 0  # fmt: skip
    assert len(list(out.glob("*_cam.png"))) == 1


def test_review_page_maps_through_the_recorded_box(cropped_run):
    from core.explain.review import review_table

    run, rows, root, entries = cropped_run
    table = review_table(run)
    assert table.crop_for(root / rows[3]["image"]) == entries[3].crop
    assert table.crop_for(root / rows[0]["image"]) is None  # its auto box was never used


def test_predict_warns_about_an_image_without_a_box(cropped_run, tmp_path, images_dir, capsys):
    run, _, _, _ = cropped_run
    new = images_dir / "IM-0115-0001.jpeg"  # not in the training table
    out = tmp_path / "new.csv"
    assert main(["predict", str(run), str(new), "--out", str(out), "--quiet"]) == 0
    assert "1 image(s) here have no box and were scored whole" in capsys.readouterr().err
    h, w = read_image(new).pixels.shape
    box = Crop(w // 8, h // 8, w - w // 8, h - h // 10)
    sidecar = write_sidecar(tmp_path / "new.crops.csv",
                            CropTable((CropEntry(new.name, file_sha256(new), box),)))  # fmt: skip
    out2 = tmp_path / "new2.csv"
    assert main(["predict", str(run), str(new), "--out", str(out2), "--crops", str(sidecar),
                 "--quiet"]) == 0  # fmt: skip
    assert "no box" not in capsys.readouterr().err
    probs = [float(next(csv.DictReader(p.open(encoding="utf-8")))["prob"]) for p in (out, out2)]
    models = _fold_models(run)
    x = to_model_input(preprocess(read_image(new).pixels, PreprocessConfig(resolution=32),
                                  box))[None, None]  # fmt: skip
    with torch.no_grad():
        expected = np.mean([float(torch.sigmoid(m.eval()(x))[0]) for m in models])
    assert probs[1] == pytest.approx(expected, abs=1e-6)
