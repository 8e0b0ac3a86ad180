"""core.models.resnet is torchvision's ResNet-50 without importing torchvision: the same
state_dict (names, shapes), the same outputs from the same weights, the same seeded
random initialisation, and bpd predict no longer imports torchvision at all."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torchvision

from core.models.resnet import resnet50
from core.models.weights import build_resnet


@pytest.mark.parametrize("num_classes", [1000, 18])
def test_state_dict_names_and_shapes_are_torchvisions(num_classes):
    ours = resnet50(num_classes=num_classes).state_dict()
    theirs = torchvision.models.resnet50(weights=None, num_classes=num_classes).state_dict()
    assert list(ours) == list(theirs)  # same order too: strict loads either way
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}


def test_same_weights_give_identical_outputs_and_features():
    torch.manual_seed(0)
    theirs = torchvision.models.resnet50(weights=None).eval()
    # perturb BatchNorm statistics so eval mode is not an identity that hides a mix-up
    for m in theirs.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    ours = resnet50()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    ours.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))
        ours.train(), theirs.train()
        assert torch.equal(ours(x), theirs(x))  # batch statistics as well


@pytest.mark.parametrize("init", ["xrv", "imagenet", "random"])
def test_seeded_random_init_draws_torchvisions_weights(init):
    """A random-init run seeded as before gets the very weights it got from torchvision
    (runs stay reproducible across this change)."""
    torch.manual_seed(7)
    ours = build_resnet(init).state_dict()
    torch.manual_seed(7)
    if init == "imagenet":
        theirs = torchvision.models.resnet50(weights=None)
    else:  # as build_resnet did: 18 classes, then a single-channel stem
        theirs = torchvision.models.resnet50(weights=None, num_classes=18)
        theirs.conv1 = torch.nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    theirs = theirs.state_dict()
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs), init


def test_predict_path_does_not_import_torchvision_or_pandas():
    code = (
        "import sys, core.cli.main, core.predict.models, core.predict.predict, "
        "core.predict.inputs, core.models.export, core.training.fastpath\n"
        "bad = sorted(m for m in ('torchvision', 'torchxrayvision', 'pytorch_grad_cam', "
        "'pandas', 'torch._dynamo') if m in sys.modules)\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
