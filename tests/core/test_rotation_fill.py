"""Rotation fills the corners it brings in from outside the image with 0 in the model's
input range [-1024, 1024] (mid-grey), as the authors' code, not with black (-1024)."""

from __future__ import annotations

import torch

from core.training.augment import FILL, augment_batch
from core.training.config import AugmentConfig

ROTATE_ONLY = AugmentConfig(
    rotation_deg=45.0, hflip_p=0.0, crop_scale_min=1.0, crop_scale_max=1.0, blur_p=0.0, mask_p=0.0
)


def test_rotated_corners_are_filled_with_zero():
    assert FILL == 0.0
    x = torch.full((16, 1, 32, 32), -1024.0)  # an all-black batch: any grey is the fill
    out = augment_batch(x, ROTATE_ONLY, torch.Generator().manual_seed(3))
    assert out.min() >= -1024.0 - 1e-3 and out.max() <= 1e-3
    filled = (out.abs() < 1e-3).flatten(1).sum(1)
    # most images turned far enough to bring in corners from outside, all of them 0
    assert (filled > 0).sum() >= 12
    corners = out[filled > 0][..., [0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners.abs() < 1e-3).any(dim=-1).all()
    # the centre stays image
    assert torch.allclose(out[..., 16, 16], torch.tensor(-1024.0))


def test_no_rotation_means_no_fill():
    still = AugmentConfig(
        rotation_deg=0.0, hflip_p=0.0, crop_scale_min=1.0, crop_scale_max=1.0, blur_p=0.0,
        mask_p=0.0,
    )  # fmt: skip
    x = torch.full((4, 1, 32, 32), 700.0)
    out = augment_batch(x, still, torch.Generator().manual_seed(0))
    assert torch.allclose(out, x, atol=1e-2)
