"""What a site sends and receives: the weights of the groups that train, BatchNorm never.

FedBN: every BatchNorm module (found by type, so the downsample BatchNorms inside the
residual blocks are included) keeps its affine parameters and running statistics at the
site; they describe the site's scanners and infants, not the task. Only the other
parameters of the groups that train in a round (core.training.schedule) are exchanged,
as float32 numpy arrays keyed by their state_dict names.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from core.training import schedule as sch

ALL_GROUPS = (*sch.PROGRESSIVE_GROUPS, "backbone")


def batchnorm_modules(model: nn.Module) -> dict[str, nn.Module]:
    return {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
    }


def batchnorm_keys(model: nn.Module) -> set[str]:
    """state_dict names of every BatchNorm parameter and buffer (weight, bias,
    running_mean, running_var, num_batches_tracked)."""
    return {
        f"{name}.{key}" for name, m in batchnorm_modules(model).items() for key in m.state_dict()
    }


def exchanged_keys(model: nn.Module, groups: Iterable[str]) -> list[str]:
    """Parameter names of `groups` (head, layer4, ..., backbone) minus BatchNorm's."""
    bn_ids = {id(m) for m in batchnorm_modules(model).values()}
    module_names = {id(m): name for name, m in model.named_modules()}
    keys: list[str] = []
    for group in groups:
        params = {id(p) for p in sch.group_params(model, group)}
        for module in model.modules():
            if id(module) in bn_ids:
                continue
            for pname, p in module.named_parameters(recurse=False):
                if id(p) in params:
                    prefix = module_names[id(module)]
                    keys.append(f"{prefix}.{pname}" if prefix else pname)
    return keys


def outgoing(model: nn.Module, groups: Iterable[str]) -> dict[str, np.ndarray]:
    """The arrays a site sends after a round: float32 copies, on the CPU."""
    state = model.state_dict()
    return {
        k: state[k].detach().float().cpu().numpy().copy() for k in exchanged_keys(model, groups)
    }


def apply_incoming(model: nn.Module, arrays: dict[str, np.ndarray]) -> None:
    """Load the server's arrays into the model in place (dtype, device and memory format
    stay the model's). Refuses any name that is not an exchangeable parameter."""
    allowed = set(exchanged_keys(model, ALL_GROUPS))
    unknown = sorted(set(arrays) - allowed)
    if unknown:
        raise ValueError(f"the server sent non-exchangeable weights: {', '.join(unknown[:5])}")
    with torch.no_grad():
        for key, value in arrays.items():
            param = model.get_parameter(key)
            if tuple(param.shape) != tuple(value.shape):
                raise ValueError(f"{key}: shape {tuple(value.shape)} != {tuple(param.shape)}")
            param.copy_(torch.from_numpy(np.asarray(value, dtype=np.float32)))


class ProximalTerm:
    """FedProx: adds mu * (w - w_global) to each trainable parameter's gradient, the
    gradient of (mu / 2) * ||w - w_global||^2, through tensor hooks, so the training
    step itself (core.training.loop) stays the one a site runs alone. `scale` follows a
    GradScaler's loss scale on fp16 GPUs (the hook sees scaled gradients)."""

    def __init__(self, model: nn.Module, keys: Iterable[str], mu: float, scale=lambda: 1.0):
        """`keys`: the parameters that train this round (requires_grad set), just after
        the server's weights were loaded into them."""
        self.mu = float(mu)
        self.scale = scale
        self.handles: list = []
        if self.mu <= 0:
            return
        for key in sorted(set(keys)):
            p = model.get_parameter(key)
            anchor = p.detach().clone()
            self.handles.append(p.register_hook(self._hook(p, anchor)))

    def _hook(self, p: torch.Tensor, anchor: torch.Tensor):
        def add_proximal(grad: torch.Tensor) -> torch.Tensor:
            return grad + (self.mu * self.scale()) * (p.detach() - anchor).to(grad.dtype)

        return add_proximal

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []
