"""A model carries its crop policy (model.json `crops`), and a prediction cuts each new
image as the model's training images were cut: its box, the run's recorded box, or with
--autobox the automatic chest box, found exactly as `bpd cohort autobox` finds it. Real
demo radiographs, an untrained 32 px ResNet-50 (no training: the pixels are the point)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from core.cohort.chest_box import AUTOBOX_VERSION, autobox_images, find_chest_box
from core.cohort.crop_policy import crop_policy
from core.cohort.crops import Crop, CropEntry, CropTable, file_sha256, write_sidecar
from core.cohort.images import read_image
from core.cohort.preprocess import PreprocessConfig, preprocess, to_model_input
from core.errors import InputError
from core.predict.crop_choice import (
    AUTOBOX,
    WHOLE_UNLIKE_TRAINING,
    autobox_caveat,
    crop_warning,
)
from core.predict.inputs import read_inputs
from core.predict.models import Predictor
from core.predict.predict import predict, write_results

DEMO = Path(__file__).resolve().parents[2] / "resources" / "demo_cohort" / "images"
IMAGES = [DEMO / "NORMAL" / "IM-0145-0001.jpeg", DEMO / "PNEUMONIA" / "person1045_virus_1741.jpeg"]


def _box(source: str = "manual") -> Crop:
    return Crop(20, 30, 200, 200, source=source)


def _table(*sources: str) -> CropTable:
    return CropTable(tuple(CropEntry(f"i{i}.png", f"{i:064x}", _box(s))
                           for i, s in enumerate(sources)))  # fmt: skip


def test_policy_names_how_the_boxes_were_made():
    assert crop_policy(None) == {"trained_on_crops": False, "method": "none"}
    assert crop_policy(_table("auto"))["method"] == "none"  # an unreviewed box is not used
    manual = crop_policy(_table("manual", "manual", "auto"))
    assert manual["method"] == "manual" and manual["boxes"] == 2 and "autobox" not in manual
    auto = crop_policy(_table("accepted", "accepted"))
    assert auto["method"] == "autobox" and auto["sources"] == {"accepted": 2}
    assert auto["autobox"]["version"] == AUTOBOX_VERSION
    assert auto["autobox"]["parameters"]["work_size"] == 256
    assert crop_policy(_table("accepted", "manual"))["method"] == "mixed"


class PixelProbe(torch.nn.Module):
    """A fixed linear read-out of every input pixel: its probability moves with any pixel
    (an untrained ResNet-50 saturates at 0 or 1 on these inputs), so equal probabilities
    mean equal model inputs."""

    def __init__(self, resolution: int = 32):
        super().__init__()
        weight = torch.randn(resolution * resolution, generator=torch.Generator().manual_seed(5))
        self.register_buffer("weight", weight / resolution)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1) / 1024.0) @ self.weight


@pytest.fixture(scope="module")
def model():
    return PixelProbe()


def _predictor(model, policy, crops=None) -> Predictor:
    return Predictor(models=[("m", model)], preprocess=PreprocessConfig(resolution=32),
                     threshold=0.5, kind="export", source=Path("model"),
                     crops=crops or CropTable(), crop_policy=policy)  # fmt: skip


def _prob(model, path: Path, crop: Crop | None) -> float:
    x = to_model_input(preprocess(read_image(path).pixels, PreprocessConfig(32), crop))[None, None]
    with torch.no_grad():
        return float(torch.sigmoid(model(x))[0])


def test_autobox_cuts_new_images_as_bpd_cohort_autobox_cut_the_training_ones(model, tmp_path):
    policy = crop_policy(_table("accepted"))
    result = predict(_predictor(model, policy), read_inputs(IMAGES), autobox=True)
    # the boxes `bpd cohort autobox --accept` would have written for these images
    accepted = autobox_images([(p.name, p) for p in IMAGES], CropTable()).table.accepted()
    for path, row in zip(IMAGES, result.images, strict=True):
        assert row["crop"] == AUTOBOX
        box = accepted.for_sha(file_sha256(path))
        assert box.geometry() == find_chest_box(read_image(path).pixels).crop.geometry()
        assert row["prob"] == pytest.approx(_prob(model, path, box), abs=1e-6)
        assert abs(row["prob"] - _prob(model, path, None)) > 1e-6  # not the whole image
    assert autobox_caveat(policy) is None
    assert "boxes drawn by hand" in autobox_caveat(crop_policy(_table("manual")))
    out = write_results(result, tmp_path / "pred.csv")["images"]
    assert [r["crop"] for r in csv.DictReader(out.open(encoding="utf-8"))] == [AUTOBOX] * 2


def test_a_model_trained_on_crops_says_which_images_it_scored_whole(model, tmp_path):
    policy = crop_policy(_table("manual"))
    boxed = CropTable((CropEntry("a", file_sha256(IMAGES[0]), _box()),))
    result = predict(_predictor(model, policy), read_inputs(IMAGES), crops=boxed)
    assert [r["crop"] for r in result.images] == ["box: manual", WHOLE_UNLIKE_TRAINING]
    assert result.images[0]["prob"] == pytest.approx(_prob(model, IMAGES[0], _box()), abs=1e-6)
    assert result.images[1]["prob"] == pytest.approx(_prob(model, IMAGES[1], None), abs=1e-6)
    warning = crop_warning(policy, result.images)
    assert "1 image(s) here have no box and were scored whole" in warning
    assert "boxes drawn by hand (1 images)" in warning and "--autobox" in warning


def test_autobox_is_refused_for_a_model_trained_on_whole_images(model):
    with pytest.raises(InputError, match="trained on whole images"):
        predict(_predictor(model, crop_policy(None)), read_inputs(IMAGES[:1]), autobox=True)


def test_a_whole_image_model_writes_no_crop_column(model, tmp_path):
    result = predict(_predictor(model, crop_policy(None)), read_inputs(IMAGES[:1]))
    out = write_results(result, tmp_path / "pred.csv")["images"]
    assert "crop" not in next(csv.DictReader(out.open(encoding="utf-8")))
    assert crop_warning(crop_policy(None), result.images) is None


def test_sidecar_box_wins_over_autobox(model, tmp_path):
    entry = CropEntry("n", file_sha256(IMAGES[1]), _box())
    sidecar = write_sidecar(tmp_path / "new.crops.csv", CropTable((entry,)))
    from core.cohort.crops import read_sidecar

    policy = crop_policy(_table("accepted"))
    result = predict(_predictor(model, policy), read_inputs(IMAGES), crops=read_sidecar(sidecar),
                     autobox=True)  # fmt: skip
    assert [r["crop"] for r in result.images] == [AUTOBOX, "box: manual"]
    assert np.isclose(result.images[1]["prob"], _prob(model, IMAGES[1], _box()), atol=1e-6)


def test_the_app_reads_a_models_policy_from_its_json_without_torch(tmp_path):
    import json
    import subprocess
    import sys

    from core.predict.crop_choice import model_crop_policy
    from core.runs.folder import RunFolder

    run = RunFolder.create(tmp_path / "run", {"crops": _table("accepted").to_json()}, {})
    assert model_crop_policy(run.path)["method"] == "autobox"  # the fold ensemble's boxes
    run.final_model_dir.mkdir()
    card = {"crops": crop_policy(_table("manual"))}
    (run.final_model_dir / "model.json").write_text(json.dumps(card), encoding="utf-8")
    assert model_crop_policy(run.path)["method"] == "manual"  # the final model's card
    assert model_crop_policy(run.final_model_dir)["method"] == "manual"
    assert model_crop_policy(tmp_path / "nothing") == {}
    code = ("import sys; from core.predict.crop_choice import model_crop_policy; "
            f"model_crop_policy({str(run.path)!r}); assert 'torch' not in sys.modules")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def test_bpd_predict_says_it_once_and_autobox_travels_in_serve_requests(model, tmp_path, capsys):
    from core.cli.main import build_parser
    from core.cli.predict_cmd import predict_request
    from core.cli.predict_serve import request_args

    predictor = _predictor(model, crop_policy(_table("manual")))
    argv = ["predict", "model", *map(str, IMAGES), "--out", str(tmp_path / "a.csv")]
    _, written = predict_request(build_parser().parse_args(argv), predictor)
    err = capsys.readouterr().err
    assert err.count("2 image(s) here have no box and were scored whole") == 1
    rows = list(csv.DictReader(written["images"].open(encoding="utf-8")))
    assert [r["crop"] for r in rows] == [WHOLE_UNLIKE_TRAINING] * 2

    base = build_parser().parse_args(["predict", "model", "--serve"])
    args = request_args(base, {"inputs": [str(IMAGES[0])], "out": str(tmp_path / "b.csv"),
                               "autobox": True})  # fmt: skip
    _, written = predict_request(args, predictor)
    err = capsys.readouterr().err
    assert "--autobox: the model was trained on boxes drawn by hand" in err
    assert "scored whole" not in err
    rows = list(csv.DictReader(written["images"].open(encoding="utf-8")))
    assert rows[0]["crop"] == AUTOBOX
