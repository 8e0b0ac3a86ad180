"""Backbone features computed once per image, for a linear probe without augmentation.

When frozen BatchNorm runs in train mode (the paper), the probe's forward passes would
move the running statistics towards the training images; `recalibrate_bn` gets there in
one pass (cumulative average), so the cached eval-mode features match that state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

Batches = Iterable[tuple[np.ndarray, torch.Tensor]]  # (image indices, model input)


@torch.no_grad()
def recalibrate_bn(
    model: nn.Module, batches: Batches, autocast: Callable, after_batch: Callable[[int], None]
) -> None:
    """Running BN statistics := their average over `batches` (train-mode forward)."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    model.train()
    try:
        for idx, x in batches:
            if len(idx) < 2:  # batch statistics of one image are not statistics
                continue
            with autocast():
                model.forward_features(x)
            after_batch(len(idx))
    finally:
        for m, momentum in zip(bns, momenta, strict=True):
            m.momentum = momentum


@torch.no_grad()
def extract_features(
    model: nn.Module,
    batches: Batches,
    n_images: int,
    autocast: Callable,
    after_batch: Callable[[int], None],
) -> torch.Tensor:
    """Eval-mode pooled features [n_images, 2048] (float32, CPU); rows of images not in
    `batches` stay zero."""
    model.eval()
    feats = torch.zeros(n_images, 2048)
    for idx, x in batches:
        with autocast():
            f = model.forward_features(x)
        feats[torch.as_tensor(idx)] = f.float().cpu()
        after_batch(len(idx))
    return feats


def uses_feature_cache(cfg) -> bool:
    """The probe trains on cached features when nothing changes its input per epoch."""
    return cfg.uses_feature_cache
