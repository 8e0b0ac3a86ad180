"""Pretrained weights: offline import, strict checks, safe loading, clear errors.

No real pretrained file is available offline, so each test makes a state dict locally in
the layout torchxrayvision / torchvision publish (torchvision ResNet-50, 18 classes and a
1-channel stem for xrv) and sends it through the same paths a site would use.
"""

import argparse
import json
import logging

import pytest
import torch
import torchvision
from torch import nn

from core.cli import weights_cmd
from core.errors import InputError, WeightsMissingError
from core.models import registry, weights


def _xrv_layout_resnet() -> nn.Module:
    # Written out here (not via core) so the test checks core builds the same thing.
    model = torchvision.models.resnet50(weights=None, num_classes=18)
    model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model


@pytest.fixture(scope="module")
def xrv_state_file(tmp_path_factory):
    torch.manual_seed(123)
    state = _xrv_layout_resnet().state_dict()
    path = tmp_path_factory.mktemp("download") / "resnet50-xrv-state.pt"
    torch.save(state, path)
    return path, state


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("BPD_STUDIO_HOME", str(tmp_path / "home"))
    # The libraries' own caches (~/.torchxrayvision, $TORCH_HOME) are looked at too.
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "user" / "torch"))
    return tmp_path / "home"


def test_import_then_create_model_uses_the_files_tensors(xrv_state_file, home):
    path, state = xrv_state_file
    assert not registry.weights_available("xrv")
    dest = weights.import_weights(path, "xrv")
    assert dest.parent == home / "weights" / "xrv"
    assert registry.weights_available("xrv")

    model = registry.create_model("xrv", allow_download=False)
    loaded = model.backbone.state_dict()
    for key, tensor in state.items():
        if key.startswith("fc."):
            assert key not in loaded  # the 18-pathology classifier is dropped
        else:
            assert torch.equal(loaded[key], tensor), key
    assert model.adapter.normalization == "xrv" and model.adapter.channels == 1
    model.eval()
    assert model(torch.zeros(1, 1, 64, 64)).shape == (1,)


def test_import_lands_where_torchxrayvision_looks(xrv_state_file, home):
    path, _ = xrv_state_file
    dest = weights.import_weights(path, "xrv")
    xrv = weights._import_xrv()
    # With the file in place get_weights resolves it without any download.
    resolved = xrv.models.get_weights(weights.XRV_WEIGHTS, cache_dir=str(dest.parent))
    assert resolved == str(dest)
    assert dest.name == "pc-nih-rsna-siim-vin-resnet50-test512-e400-state.pt"


def test_file_already_in_torchxrayvision_cache_is_used(xrv_state_file, home, tmp_path):
    path, state = xrv_state_file
    xrv_cache = tmp_path / "user" / ".torchxrayvision" / "models_data"
    xrv_cache.mkdir(parents=True)
    (xrv_cache / weights.weights_source("xrv").file_name).write_bytes(path.read_bytes())
    assert registry.weights_available("xrv")
    model = registry.create_model("xrv", allow_download=False)
    assert torch.equal(model.backbone.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])


def test_missing_weights_name_file_folder_url_and_import_command(home):
    with pytest.raises(WeightsMissingError) as info:
        registry.create_model("xrv", allow_download=False)
    msg = str(info.value)
    assert "pc-nih-rsna-siim-vin-resnet50-test512-e400-state.pt" in msg
    assert str(home / "weights" / "xrv") in msg
    assert "https://github.com/mlmed/torchxrayvision/releases" in msg
    assert "bpd weights import FILE --init xrv" in msg
    assert info.value.file_name.endswith("-state.pt")


def test_offline_download_fails_at_once_with_the_reason(home, monkeypatch):
    monkeypatch.setattr(weights, "_host_reachable", lambda url: "cannot reach host: offline")
    with pytest.raises(WeightsMissingError, match=r"offline.*resnet50-11ad3fa6\.pth"):
        registry.create_model("imagenet")
    assert not (home / "weights" / "torchvision" / "resnet50-11ad3fa6.pth").exists()


def test_failed_download_through_a_dead_proxy_is_reported(home, monkeypatch):
    # Goes through torchxrayvision's real download code; the proxy refuses at once.
    for name in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    with pytest.raises(WeightsMissingError, match=r"download failed.*bpd weights import"):
        registry.create_model("xrv")
    assert not weights.weights_source("xrv").path().exists()


def test_pickled_model_is_refused(tmp_path, home):
    bad = tmp_path / "whole_model.pt"
    torch.save(_xrv_layout_resnet(), bad)  # a pickled nn.Module, not a state_dict
    with pytest.raises(InputError, match="pickled"):
        weights.import_weights(bad, "xrv")
    assert not registry.weights_available("xrv")


def test_wrong_shapes_and_keys_are_refused(tmp_path, home):
    three_channel = torchvision.models.resnet50(weights=None, num_classes=18).state_dict()
    bad = tmp_path / "rgb.pt"
    torch.save(three_channel, bad)
    with pytest.raises(InputError, match=r"conv1\.weight \(64, 3, 7, 7\)"):
        weights.import_weights(bad, "xrv")

    partial = dict(_xrv_layout_resnet().state_dict())
    partial.pop("layer4.2.conv3.weight")
    partial["extra.weight"] = torch.zeros(1)
    bad2 = tmp_path / "partial.pt"
    torch.save(partial, bad2)
    with pytest.raises(InputError, match=r"missing: layer4\.2\.conv3\.weight.*unexpected: extra"):
        weights.import_weights(bad2, "xrv")

    not_torch = tmp_path / "notes.txt"
    not_torch.write_text("not weights")
    with pytest.raises(InputError, match="not a PyTorch weights file"):
        weights.import_weights(not_torch, "xrv")
    assert not registry.weights_available("xrv")


def test_corrupt_cached_file_says_how_to_replace_it(home):
    folder = home / "weights" / "xrv"
    folder.mkdir(parents=True)
    (folder / weights.weights_source("xrv").file_name).write_bytes(b"truncated")
    with pytest.raises(WeightsMissingError, match="bpd weights import FILE --init xrv"):
        registry.create_model("xrv", allow_download=False)


def test_imagenet_import_and_cli_status(tmp_path, home, capsys, caplog):
    torch.manual_seed(7)
    state = torchvision.models.resnet50(weights=None).state_dict()
    file = tmp_path / "resnet50-imagenet.pth"
    torch.save(state, file)

    parser = argparse.ArgumentParser()
    weights_cmd.register(parser.add_subparsers(dest="command"))

    args = parser.parse_args(["weights", "status"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "xrv       missing" in out and "imagenet  missing" in out

    args = parser.parse_args(["weights", "import", str(file), "--init", "imagenet"])
    with caplog.at_level(logging.WARNING, logger="core.models.weights"):
        assert args.func(args) == 0
    assert "not the official resnet50-11ad3fa6.pth" in caplog.text
    assert "resnet50-11ad3fa6.pth" in capsys.readouterr().out

    args = parser.parse_args(["weights", "status"])
    args.func(args)
    out = capsys.readouterr().out
    assert "imagenet  present" in out and "xrv       missing" in out
    args = parser.parse_args(["weights", "status", "--json"])
    args.func(args)
    rows = {row["init"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["imagenet"]["present"] and not rows["xrv"]["present"]
    assert rows["xrv"]["file_name"] == "pc-nih-rsna-siim-vin-resnet50-test512-e400-state.pt"

    model = registry.create_model("imagenet", allow_download=False)
    assert torch.equal(model.backbone.conv1.weight, state["conv1.weight"])
    assert model.adapter.normalization == "imagenet" and model.adapter.channels == 3


def test_random_init_needs_no_files_and_seed_is_reproducible(home):
    assert registry.weights_available("random")
    a = registry.create_model("random", seed=3)
    b = registry.create_model("random", seed=3)
    c = registry.create_model("random", seed=4)
    assert torch.equal(a.head[1].weight, b.head[1].weight)
    assert torch.equal(a.backbone.conv1.weight, b.backbone.conv1.weight)
    assert not torch.equal(a.head[1].weight, c.head[1].weight)
    assert torch.allclose(a.head[1].bias, torch.tensor([0.01]))
    assert isinstance(a.backbone.fc, nn.Identity)
    with pytest.raises(InputError, match="unknown init"):
        registry.create_model("densenet")
