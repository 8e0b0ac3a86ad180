"""`bpd predict` on real demo radiographs: an exported model, a run's final model and a
run's fold ensemble give the probabilities of the models' own forward pass on the
run's preprocessing; Grad-CAM files; errors that name the file or row."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch

from core.cli.main import main
from tests.core.test_final_model import tiny_table, train_tiny

pytestmark = pytest.mark.slow  # real training runs (CI runs them too)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(run with final model, copy of it without: the fold ensemble)."""
    tmp = tmp_path_factory.mktemp("predict")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BPD_STUDIO_HOME", str(tmp / "home"))
        run = train_tiny(tmp, "--final-model", "--no-report")
        ensemble = tmp / "ensemble-run"
        shutil.copytree(run, ensemble)
        shutil.rmtree(ensemble / "final_model")
        yield run, ensemble


@pytest.fixture()
def new_images(tmp_path):
    """Demo radiographs not in the tiny training table (the 7th-8th of each class)."""
    table, root = tiny_table(tmp_path, 8, name="all8.csv")
    rows = list(csv.DictReader(table.open(encoding="utf-8")))
    chosen = [r for r in rows if r["diagnosis"] == "NORMAL"][6:] + [
        r for r in rows if r["diagnosis"] == "PNEUMONIA"
    ][6:]
    return [root / r["image"] for r in chosen], chosen, root


def _forward_probs(models, paths, resolution):
    """What the model(s) themselves say on the run's preprocessing of these files."""
    from core.cohort.images import read_image
    from core.cohort.preprocess import PreprocessConfig, preprocess, to_model_input

    cfg = PreprocessConfig(resolution=resolution)
    out = []
    for p in paths:  # one image per forward, as predict does (batch size changes rounding)
        x = to_model_input(preprocess(read_image(p).pixels, cfg))[None, None]
        with torch.no_grad():
            out.append(np.mean([float(torch.sigmoid(m.eval()(x))[0]) for m in models]))
    return np.array(out)


def _read(path):
    return list(csv.DictReader(open(path, encoding="utf-8", newline="")))


def test_predict_with_exported_model_matches_its_forward(runs, new_images, tmp_path):
    from core.models.export import load_model_dir

    run, _ = runs
    paths, _, _ = new_images
    out = tmp_path / "pred.csv"
    assert main(["predict", str(run / "final_model"), *map(str, paths), "--out", str(out),
                 "--quiet"]) == 0  # fmt: skip
    rows = _read(out)
    model, card = load_model_dir(run / "final_model")
    expected = _forward_probs([model], paths, 32)
    probs = np.array([float(r["prob"]) for r in rows])
    assert np.all((probs >= 0) & (probs <= 1))
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    assert [r["image"] for r in rows] == [str(p) for p in paths]
    classes = [int(r["predicted_class"]) for r in rows]
    assert classes == [int(p >= card["threshold"]) for p in probs]
    assert rows[0]["model"] == "exported model final_model"


def test_run_with_final_model_uses_it(runs, new_images, tmp_path):
    run, _ = runs
    paths, _, _ = new_images
    out = tmp_path / "pred.csv"
    assert main(["predict", str(run), str(paths[0]), "--out", str(out), "--quiet"]) == 0
    assert _read(out)[0]["model"] == f"final model of {run.name}"


def test_run_without_final_model_is_the_fold_ensemble(runs, new_images, tmp_path):
    from core.runs.folder import RunFolder

    _, ensemble = runs
    paths, _, _ = new_images
    out = tmp_path / "pred.csv"
    assert main(["predict", str(ensemble), *map(str, paths), "--out", str(out), "--quiet"]) == 0
    rows = _read(out)
    run = RunFolder.existing(ensemble)
    folds = [f.fold_id for f in run.finished_folds()]
    assert folds == ["r0-f0", "r0-f1"]
    expected = _forward_probs([run.fold_model(f) for f in folds], paths, 32)
    np.testing.assert_allclose([float(r["prob"]) for r in rows], expected, atol=1e-6)
    assert rows[0]["model"] == f"ensemble of 2 fold models of {ensemble.name}"
    # the fold models really differ, so the mean is not one of them
    single = _forward_probs([run.fold_model("r0-f0")], paths, 32)
    assert not np.allclose(single, expected)


def test_table_without_outcome_and_with_metrics(runs, new_images, tmp_path, capsys):
    run, _ = runs
    _, chosen, root = new_images
    table = tmp_path / "new.csv"
    with open(table, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Pat-Nr", "Bild"])  # guessed like a cohort table, no outcome column
        w.writerows([[r["patient_id"], r["image"]] for r in chosen])
    out = tmp_path / "pred.csv"
    args = ["predict", str(run), str(table), "--images-root", str(root), "--out", str(out)]
    assert main([*args, "--quiet"]) == 0
    patients = _read(tmp_path / "pred_patients.csv")
    ids = [r["patient_id"] for r in chosen]
    assert [p["patient_id"] for p in patients] == list(dict.fromkeys(ids))
    assert all(p["label"] == "" and int(p["n_images"]) == ids.count(p["patient_id"])
               for p in patients)  # fmt: skip
    images = _read(out)
    for p in patients:  # the run scores a patient by its first image
        first = next(r for r in images if r["patient_id"] == p["patient_id"])
        assert p["prob"] == first["prob"]
    assert not (tmp_path / "pred_metrics.json").exists()
    # with the outcome (a second table that has it): metrics over the patients
    labelled, _ = tiny_table(tmp_path, 8, name="labelled.csv")
    out2 = tmp_path / "pred2.csv"
    assert main(["predict", str(run), str(labelled), "--images-root", str(root), "--out",
                 str(out2), "--outcome", "diagnosis", "--positive", "PNEUMONIA",
                 "--negative", "NORMAL", "--quiet"]) == 0  # fmt: skip
    metrics = json.loads((tmp_path / "pred2_metrics.json").read_text())
    labels = {r["patient_id"]: r["diagnosis"] for r in _read(labelled)}
    assert metrics["n_patients"] == len(labels)
    assert metrics["n_positive"] == list(labels.values()).count("PNEUMONIA")
    assert 0.0 <= metrics["auroc"] <= 1.0
    # a misspelt positive value fails (it used to label every patient negative, exit 0)
    out3 = tmp_path / "pred3.csv"
    assert main(["predict", str(run), str(labelled), "--images-root", str(root), "--out",
                 str(out3), "--outcome", "diagnosis", "--positive", "PNEUMONIAX",
                 "--quiet"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "--positive value 'PNEUMONIAX' does not occur in the outcome column 'diagnosis'" in err
    assert "did you mean 'PNEUMONIA'?" in err and not out3.exists()


def test_predict_with_cam_writes_overlay_and_map(runs, new_images, tmp_path):
    from PIL import Image

    from core.cohort.images import read_image

    _, ensemble = runs
    paths, _, _ = new_images
    out, cams = tmp_path / "pred.csv", tmp_path / "cams"
    assert main(["predict", str(ensemble), str(paths[0]), str(paths[-1]), "--out", str(out),
                 "--cam", str(cams), "--quiet"]) == 0  # fmt: skip
    rows = _read(out)
    for row in rows:
        cam = np.load(row["cam_npy"])
        assert cam.shape == (32, 32) and cam.dtype == np.float32
        assert cam.min() >= 0.0 and cam.max() <= 1.0
        # the overlay is drawn on the radiograph itself (not the 32 px model input), with
        # a colour bar to its right and the caption underneath
        h, w = read_image(row["image"]).pixels.shape
        png_w, png_h = Image.open(row["cam_png"]).size
        assert png_w > w and png_h > h and max(h, w) > 32
        assert float(row["cam_peak"]) >= 0.0
    assert len(list(cams.iterdir())) == 4


def test_errors_name_the_file_or_row(runs, tmp_path, capsys, images_dir):
    run, _ = runs
    out = tmp_path / "pred.csv"
    missing = tmp_path / "nope.png"
    assert main(["predict", str(run), str(missing), "--out", str(out)]) == 2
    assert str(missing) in capsys.readouterr().err
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image at all")
    assert main(["predict", str(run), str(broken), "--out", str(out)]) == 2
    assert str(broken) in capsys.readouterr().err
    assert main(["predict", str(tmp_path), str(broken), "--out", str(out)]) == 2
    assert "not a run folder" in capsys.readouterr().err
    table = tmp_path / "t.csv"
    table.write_text("patient_id,image\nA,a.png\n")
    assert main(["predict", str(run), str(table), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "row 1" in err and "a.png" in err
    assert not out.exists()  # nothing half-written
