"""Exported model folders: same outputs after the round trip, TorchScript included."""

import json
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.errors import InputError
from core.models import export
from core.models.registry import build_model, create_model

IMAGE = Path(__file__).resolve().parents[1] / "data" / "images" / "person47_bacteria_229.jpeg"
CARD = {
    "strategy": "probe+progressive",
    "cohort": {"n_patients": 163, "n_positive": 60, "n_negative": 103},
    "metrics": {"auroc": {"mean": 0.91, "sd": 0.04, "n": 5}},
    "preprocessing": {"resolution": 64, "center_crop": None},
    "threshold": 0.42,
    # trained on automatic chest boxes (core.cohort.crop_policy): the card must carry it
    "crops": {
        "trained_on_crops": True,
        "method": "autobox",
        "boxes": 245,
        "sources": {"accepted": 245},
        "autobox": {"version": 1},
    },
}


def _image(size: int) -> torch.Tensor:
    gray = Image.open(IMAGE).convert("L").resize((size, size))
    x01 = torch.from_numpy(np.asarray(gray, dtype=np.float32) / 255.0)
    return ((x01 * 2.0 - 1.0) * 1024.0)[None, None]


@pytest.fixture(scope="module")
def trained_like():
    """A model whose every tensor differs from a fresh one, BatchNorm statistics too."""
    model = create_model("random", seed=1)
    model.train()
    with torch.no_grad():
        model(torch.cat([_image(64), _image(64).flip(-1)]))  # updates running stats
        model.head[1].bias.fill_(-0.3)
    return model.eval()


@pytest.fixture(scope="module")
def exported(trained_like, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "my-model"
    export.export_model(trained_like, out, card=CARD)
    return out


def test_round_trip_gives_the_same_logits(trained_like, exported, monkeypatch, tmp_path):
    # An empty studio home: loading must not need (or fetch) any pretrained weights.
    monkeypatch.setenv("BPD_STUDIO_HOME", str(tmp_path))
    model, card = export.load_model_dir(exported)
    assert not model.training
    x = torch.cat([_image(64), _image(96)[..., 16:80, 16:80]])
    with torch.no_grad():
        assert torch.equal(model(x), trained_like(x))
    assert card["threshold"] == 0.42 and card["init"] == "random"
    assert export.is_model_dir(exported)
    # bpd predict reads the model's crop policy from its card
    from core.predict.models import load_predictor

    assert load_predictor(exported).crop_policy == CARD["crops"]


def test_torchscript_gives_the_same_logits_at_any_resolution(trained_like, exported):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
        scripted = torch.jit.load(str(exported / export.TORCHSCRIPT_FILE), map_location="cpu")
    for size in (64, 96):
        x = _image(size)
        with torch.no_grad():
            torch.testing.assert_close(scripted(x), trained_like(x), rtol=1e-5, atol=1e-5)


def test_model_card_says_what_the_model_is(exported):
    card = json.loads((exported / export.CARD_FILE).read_text())
    assert "research only, not a medical device" in card["intended_use"].lower()
    assert card["initialisation"]["name"] == "random"
    assert card["cohort"] == CARD["cohort"] and card["metrics"] == CARD["metrics"]
    assert card["strategy"] == "probe+progressive"
    assert card["preprocessing"]["resolution"] == 64
    assert card["input"]["range"] == [-1024.0, 1024.0]
    assert card["crops"] == CARD["crops"]
    assert card["versions"]["torch"] == metadata.version("torch")
    assert set(card["files"]) == {export.STATE_FILE, export.TORCHSCRIPT_FILE}
    # The state file is a plain state_dict.
    state = torch.load(exported / export.STATE_FILE, map_location="cpu", weights_only=True)
    assert "head.1.weight" in state and "backbone.layer4.2.bn3.running_mean" in state


def test_pretrained_init_loads_without_its_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("BPD_STUDIO_HOME", str(tmp_path / "empty-home"))
    model = build_model("imagenet", seed=2).eval()
    export.export_model(model, tmp_path / "m", card={"preprocessing": {"resolution": 32}})
    loaded, card = export.load_model_dir(tmp_path / "m")
    assert card["init"] == "imagenet" and loaded.adapter.normalization == "imagenet"
    assert card["crops"] == {"trained_on_crops": False, "method": "none"}  # none given
    x = _image(32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_damaged_or_foreign_folders_are_refused(exported, tmp_path):
    with pytest.raises(InputError, match="not an exported model folder"):
        export.load_model_dir(tmp_path)

    broken = tmp_path / "broken"
    broken.mkdir()
    for name in (export.CARD_FILE, export.STATE_FILE):
        (broken / name).write_bytes((exported / name).read_bytes())
    data = bytearray((broken / export.STATE_FILE).read_bytes())
    data[-100] ^= 0xFF
    (broken / export.STATE_FILE).write_bytes(bytes(data))
    with pytest.raises(InputError, match="checksum"):
        export.load_model_dir(broken)

    card = json.loads((exported / export.CARD_FILE).read_text())
    card["init"] = "xrv"  # architecture with a 1-channel stem, same keys: loads
    card["architecture"]["dropout"] = 0.5
    (broken / export.STATE_FILE).write_bytes((exported / export.STATE_FILE).read_bytes())
    (broken / export.CARD_FILE).write_text(json.dumps(card))
    model, _ = export.load_model_dir(broken)
    assert model.head[0].p == 0.5

    card["init"] = "imagenet"  # 3-channel stem: does not fit
    (broken / export.CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(InputError, match="does not fit"):
        export.load_model_dir(broken)


def test_export_leaves_the_callers_model_alone(tmp_path):
    model = build_model("random", seed=3)
    model.train()
    export.export_model(model, tmp_path / "m", card={"preprocessing": {"resolution": 32}})
    assert model.training
