"""Weights that come with a hospital bundle (docs/packaging.md): beside its executable
(copied there by IT) or inside it (built with WEIGHTS=...), found after the user's own."""

import sys

import pytest
import torch
import torchvision
from torch import nn

from core.models import registry, weights


@pytest.fixture
def bundle(tmp_path, monkeypatch):
    """A frozen app's view of the world: dist/bpd-studio/{bpd-studio,_internal/}."""
    root = tmp_path / "dist" / "bpd-studio"
    monkeypatch.setenv("BPD_STUDIO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "user" / "torch"))
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(root / "bpd-studio"))
    monkeypatch.setattr(sys, "_MEIPASS", str(root / "_internal"), raising=False)
    return root


def _xrv_state_file(folder, seed):
    torch.manual_seed(seed)
    model = torchvision.models.resnet50(weights=None, num_classes=weights.XRV_NUM_CLASSES)
    model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    path = folder / "xrv" / weights.weights_source("xrv").file_name
    path.parent.mkdir(parents=True)
    torch.save(model.state_dict(), path)
    return path, model.state_dict()


def test_bundle_finds_weights_beside_then_inside_it(bundle, tmp_path):
    assert weights.find_weights("xrv") is None
    inside, _ = _xrv_state_file(bundle / "_internal" / "resources" / "weights", seed=1)
    assert weights.find_weights("xrv") == inside
    beside, state = _xrv_state_file(bundle / "weights", seed=2)
    assert weights.find_weights("xrv") == inside  # the build's own copy comes first
    inside.unlink()
    assert weights.find_weights("xrv") == beside
    model = registry.create_model("xrv", allow_download=False)
    key = "layer1.0.conv1.weight"
    assert torch.equal(model.backbone.state_dict()[key], state[key])


def test_users_own_import_wins_over_shipped_weights(bundle, tmp_path):
    _xrv_state_file(bundle / "weights", seed=1)
    own, _ = _xrv_state_file(tmp_path / "home" / "weights", seed=2)
    assert weights.find_weights("xrv") == own


def test_source_checkout_does_not_look_beside_the_python_executable(bundle, monkeypatch):
    monkeypatch.setattr(sys, "frozen", False)
    _xrv_state_file(bundle / "weights", seed=1)
    assert weights.find_weights("xrv") is None
