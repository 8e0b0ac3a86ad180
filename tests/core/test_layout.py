"""Saved weights are plain (NCHW) whatever layout training ran in, and a block can run
a model in another layout and leave it as it was."""

from __future__ import annotations

import torch
from torch import nn

from core.models.layout import plain_state, weights_in, weights_layout


def _net() -> nn.Module:
    # a 1-input-channel stem (both layouts at once) before a 3x3 that tells them apart
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 8, 3))


def test_plain_state_is_contiguous_and_a_copy():
    net = _net().to(memory_format=torch.channels_last)
    assert weights_layout(net) is torch.channels_last
    state = plain_state(net)
    assert set(state) == set(net.state_dict())
    assert all(t.is_contiguous() for t in state.values())
    torch.testing.assert_close(state["2.weight"], net[2].weight.detach(), rtol=0, atol=0)
    state["2.weight"].zero_()  # a copy: the model keeps its weights
    assert net[2].weight.abs().sum() > 0


def test_weights_in_switches_for_the_block_and_restores():
    net = _net().to(memory_format=torch.channels_last)
    x = torch.randn(2, 1, 9, 9)
    with weights_in(net, torch.contiguous_format):
        assert weights_layout(net) is torch.contiguous_format
        plain = net(x)
    assert weights_layout(net) is torch.channels_last
    torch.testing.assert_close(net(x), plain, rtol=1e-5, atol=1e-5)
    plain_net = _net()
    with weights_in(plain_net, torch.contiguous_format):  # already so: nothing moves
        assert weights_layout(plain_net) is torch.contiguous_format
    assert weights_layout(plain_net) is torch.contiguous_format
