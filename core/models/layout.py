"""A model's weights in one memory layout for a block of code, then back."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


def weights_layout(module: nn.Module) -> torch.memory_format:
    """channels_last or contiguous_format, judged by the first 4-d weight whose layouts
    differ (a 1-input-channel or 1x1 kernel is both at once)."""
    for p in module.parameters():
        if p.dim() != 4:
            continue
        last, plain = p.is_contiguous(memory_format=torch.channels_last), p.is_contiguous()
        if last != plain:
            return torch.channels_last if last else torch.contiguous_format
    return torch.contiguous_format


@contextlib.contextmanager
def weights_in(module: nn.Module, memory_format: torch.memory_format) -> Iterator[None]:
    """The 4-d weights of `module` in `memory_format` inside the block; afterwards in the
    layout they had before."""
    before = weights_layout(module)
    if before is not memory_format:
        module.to(memory_format=memory_format)
    try:
        yield
    finally:
        if before is not memory_format:
            module.to(memory_format=before)


def plain_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of module's state_dict, every tensor in the plain (NCHW)
    layout: what is saved is the same whatever layout training ran in, so a model
    loaded with assign=True (core.predict) computes as the scoring did."""
    return {
        k: v.detach().cpu().clone(memory_format=torch.contiguous_format)
        for k, v in module.state_dict().items()
    }
