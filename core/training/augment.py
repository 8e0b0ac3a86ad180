"""Batch augmentation on tensors in the model's input range [-1024, 1024].

All randomness comes from one `torch.Generator`, so a fold's augmentation stream is
reproducible and can be checkpointed (generator state) and resumed.

- `augment_batch`: rotation, horizontal flip and random resized crop as one affine
  resampling per image; Gaussian blur; random pixel masking (numbers: docs/method.md).
- `cutmix`: paste a box from a shuffled partner; lambda is recomputed from the box
  actually pasted (after clipping at the border); `mixed_bce` is the matching loss.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from core.training.config import AugmentConfig, CutMixConfig

# What fills the areas a rotation (or crop) brings in from outside the image: 0 in the
# model's input range [-1024, 1024], i.e. mid-grey, as the authors' code (torchvision's
# rotation with fill=0 on the normalised tensor), not black (-1024).
FILL = 0.0


def _uniform(n: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def _affine(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Random resized crop (area scale, aspect 3/4-4/3 like torchvision), rotation and
    horizontal flip, sampled in one bilinear pass; areas outside the image are FILL."""
    n = x.shape[0]
    scale = _uniform(n, cfg.crop_scale_min, cfg.crop_scale_max, g)
    log_ratio = _uniform(n, math.log(3 / 4), math.log(4 / 3), g)
    ratio = torch.exp(log_ratio)
    # crop size as a fraction of the image side, at most the whole image
    w = torch.sqrt(scale * ratio).clamp(max=1.0)
    h = torch.sqrt(scale / ratio).clamp(max=1.0)
    cx = (1 - w) * (2 * torch.rand(n, generator=g) - 1)  # centre offset in [-1, 1] units
    cy = (1 - h) * (2 * torch.rand(n, generator=g) - 1)
    angle = torch.deg2rad(_uniform(n, -cfg.rotation_deg, cfg.rotation_deg, g))
    flip = torch.where(torch.rand(n, generator=g) < cfg.hflip_p, -1.0, 1.0)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = w * cos * flip
    theta[:, 0, 1] = -h * sin
    theta[:, 1, 0] = w * sin * flip
    theta[:, 1, 1] = h * cos
    theta[:, 0, 2] = cx
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    shifted = x - FILL  # grid_sample pads with zeros: shift so that padding means FILL
    return (
        F.grid_sample(shifted, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        + FILL
    )


def _blur(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Gaussian blur (odd kernel, sigma uniform) applied to each image with p=blur_p."""
    n = x.shape[0]
    apply = torch.rand(n, generator=g) < cfg.blur_p
    sigma = _uniform(n, cfg.blur_sigma_min, cfg.blur_sigma_max, g)
    if not bool(apply.any()):
        return x
    k = cfg.blur_kernel
    half = (k - 1) / 2
    offsets = torch.linspace(-half, half, k)
    kernel = torch.exp(-(offsets[None, :] ** 2) / (2 * sigma[:, None] ** 2))
    kernel = (kernel / kernel.sum(1, keepdim=True)).to(x.device, x.dtype)
    c = x.shape[1]
    pad = k // 2
    y = x.transpose(0, 1).reshape(c, n, *x.shape[2:])  # channels as batch, images as groups
    y = F.pad(y, (pad, pad, pad, pad), mode="reflect")
    y = F.conv2d(y, kernel.view(n, 1, 1, k), groups=n)
    y = F.conv2d(y, kernel.view(n, 1, k, 1), groups=n)
    y = y.reshape(c, n, *x.shape[2:]).transpose(0, 1)
    keep = apply.to(x.device).view(n, 1, 1, 1)
    return torch.where(keep, y, x)


def _mask(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """With p=mask_p, zero a random mask_fraction of an image's pixels (0 in the
    normalised tensor, as the authors' code does)."""
    n = x.shape[0]
    apply = torch.rand(n, generator=g) < cfg.mask_p
    pixels = torch.rand(x.shape, generator=g) < cfg.mask_fraction
    drop = (pixels & apply.view(n, 1, 1, 1)).to(x.device)
    return x.masked_fill(drop, 0.0)


def augment_batch(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """x [B, C, H, W] float in [-1024, 1024] -> augmented copy (same shape)."""
    x = _affine(x, cfg, g)
    x = _blur(x, cfg, g)
    return _mask(x, cfg, g)


def _beta(alpha: float, g: torch.Generator) -> float:
    # torch's Beta sampler takes no generator: draw numpy's from our stream.
    seed = int(torch.randint(0, 2**62, (1,), generator=g))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def cutmix(
    x: torch.Tensor, y: torch.Tensor, cfg: CutMixConfig, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """With probability cfg.p paste a random box from a shuffled partner image.

    Returns (mixed x, y_a, y_b, lam) where lam = 1 - pasted area / image area; the loss
    is lam * BCE(y_a) + (1 - lam) * BCE(y_b). Without a paste lam = 1 and y_b = y_a.
    """
    draw = float(torch.rand(1, generator=g))
    if not cfg.enabled or draw >= cfg.p or x.shape[0] < 2:
        return x, y, y, 1.0
    lam = _beta(cfg.alpha, g)
    perm = torch.randperm(x.shape[0], generator=g).to(x.device)
    h, w = x.shape[-2:]
    cut = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(h * cut), int(w * cut)
    cy = int(torch.randint(0, h, (1,), generator=g))
    cx = int(torch.randint(0, w, (1,), generator=g))
    y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
    x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
    mixed = x.clone()
    mixed[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
    lam = 1.0 - ((y1 - y0) * (x1 - x0)) / float(h * w)
    return mixed, y, y[perm], lam


def mixed_bce(
    logits: torch.Tensor,
    y_a: torch.Tensor,
    y_b: torch.Tensor,
    lam: float,
    pos_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    loss_a = F.binary_cross_entropy_with_logits(logits, y_a, pos_weight=pos_weight)
    if lam >= 1.0:
        return loss_a
    loss_b = F.binary_cross_entropy_with_logits(logits, y_b, pos_weight=pos_weight)
    return lam * loss_a + (1.0 - lam) * loss_b
