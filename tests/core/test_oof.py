"""Out-of-fold Grad-CAM: each patient is explained by the fold model whose test set held
them (so it never trained on them), and `bpd explain` writes overlays, maps and an index."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from core.cli.main import main
from tests.core.test_final_model import train_tiny

pytestmark = pytest.mark.slow  # a real training run (CI runs it too)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("oof")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BPD_STUDIO_HOME", str(tmp / "home"))
        yield train_tiny(tmp, "--no-report")


def _fold(run, fold_id):
    return json.loads((run / "folds" / fold_id / "fold.json").read_text())


def test_patient_is_explained_by_the_fold_that_tested_them(run):
    from core.explain.oof import RunExplainer, explain_patient

    ex = RunExplainer.open(run)
    for fold_id in ("r0-f0", "r0-f1"):
        info = _fold(run, fold_id)
        pid = info["test_patients"][0]
        cam, gray, prob, used = explain_patient(ex, pid)
        assert used == fold_id
        assert pid in _fold(run, used)["test_patients"]
        assert pid not in _fold(run, used)["train_patients"]
        assert cam.shape == gray.shape == (32, 32) and cam.dtype == np.float32
        assert 0.0 <= prob <= 1.0
        # the same score the cross-validation recorded for this patient
        assert prob == pytest.approx(ex.fold_prob(used, pid), abs=2e-3)
    assert set(ex.models) == {"r0-f0", "r0-f1"}  # each fold model loaded once, cached


def test_unknown_patient_is_an_input_error(run):
    from core.errors import InputError
    from core.explain.oof import explain_patient

    with pytest.raises(InputError, match="NO-SUCH"):
        explain_patient(run, "NO-SUCH")
    with pytest.raises(InputError, match="repeat 3"):
        explain_patient(run, _fold(run, "r0-f0")["test_patients"][0], repeat=3)


def test_bpd_explain_writes_overlays_maps_and_index(run, tmp_path, capsys):
    out = tmp_path / "cams"
    assert main(["explain", str(run), "--all", "--out", str(out), "--opacity", "0.5"]) == 0
    rows = list(csv.DictReader((out / "index.csv").read_text(encoding="utf-8").splitlines()))
    tested = {p for f in ("r0-f0", "r0-f1") for p in _fold(run, f)["test_patients"]}
    assert {r["patient_id"] for r in rows} == tested
    for r in rows:
        assert r["patient_id"] in _fold(run, r["fold_id"])["test_patients"]
        assert (out / r["png"]).is_file() and np.load(out / r["npy"]).shape == (32, 32)
        assert r["label"] in ("0", "1") and 0 <= float(r["oof_prob"]) <= 1
    assert main(["explain", str(run), "--out", str(out)]) == 2  # neither --patients nor --all


def test_explain_caches_overlays_on_the_radiograph_with_one_scale(run, tmp_path):
    from PIL import Image

    from core.cohort.images import read_image
    from core.explain.batch import run_explanations

    assert main(["explain", str(run), "--all"]) == 0  # default: the run's explanations/
    cached = run_explanations(run)
    assert cached is not None and cached.settings["scaling"] == "shared"
    peaks = [float(r["peak"]) for r in cached.rows.values()]
    assert cached.shared_peak == max(peaks) and cached.settings["shared_peak"] == max(peaks)
    for pid, row in cached.rows.items():
        assert row["empty"] == str(int(float(row["peak"]) <= 0))
        h, w = read_image(row["image"]).pixels.shape
        png_w, png_h = Image.open(cached.overlay_png(pid)).size
        assert png_w > w and png_h > h  # colour bar beside, caption below, not 32 x 32
        assert cached.map(pid).shape == (32, 32)
