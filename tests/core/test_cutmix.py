"""CutMix's lambda is the share of the image that was not pasted over; augmentation is
reproducible from its generator and keeps shape and range."""

from __future__ import annotations

import torch

from core.training.augment import augment_batch, cutmix, mixed_bce
from core.training.config import AugmentConfig, CutMixConfig


def _batch(n=6, size=48):
    # every image constant and distinct, so pasted pixels are identifiable
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, size, size).clone()
    return x, (torch.arange(n) % 2).float()


def test_lambda_equals_unpasted_area():
    cfg = CutMixConfig(enabled=True, p=1.0, alpha=1.0)
    seen_partial = 0
    for seed in range(40):
        x, y = _batch()
        g = torch.Generator().manual_seed(seed)
        mixed, y_a, _, lam = cutmix(x, y, cfg, g)
        assert torch.equal(y_a, y)
        for i in range(len(x)):
            own = (mixed[i] == x[i, 0, 0, 0]).float().mean().item()
            if own < 1.0:  # pasted from another image: lambda = share of own pixels
                assert abs(own - lam) < 1e-6, (seed, i, own, lam)
        seen_partial += lam < 1.0
    assert seen_partial > 20  # with p=1 almost every batch is mixed


def test_partner_labels_are_a_permutation_and_match_pasted_pixels():
    cfg = CutMixConfig(enabled=True, p=1.0, alpha=1.0)
    x, y = _batch(8)
    y = torch.tensor([0, 1, 0, 1, 1, 0, 0, 1], dtype=torch.float32)
    g = torch.Generator().manual_seed(3)
    mixed, _, y_b, lam = cutmix(x, y, cfg, g)
    assert lam < 1.0
    assert sorted(y_b.tolist()) == sorted(y.tolist())
    for i in range(len(x)):
        values = mixed[i].unique()
        other = [v for v in values.tolist() if v != x[i, 0, 0, 0].item()]
        if other:
            assert y_b[i] == y[int(other[0])]


def test_no_cutmix_when_disabled_or_p_zero():
    x, y = _batch()
    for cfg in (CutMixConfig(enabled=False, p=1.0), CutMixConfig(enabled=True, p=0.0)):
        mixed, y_a, y_b, lam = cutmix(x, y, cfg, torch.Generator().manual_seed(0))
        assert lam == 1.0 and mixed is x and torch.equal(y_b, y_a)


def test_cutmix_probability_is_respected():
    cfg = CutMixConfig(enabled=True, p=0.5, alpha=1.0)
    g = torch.Generator().manual_seed(0)
    mixed = sum(cutmix(*_batch(), cfg, g)[3] < 1.0 for _ in range(400))
    assert 160 < mixed < 240


def test_mixed_loss_is_lambda_weighted():
    logits = torch.tensor([0.3, -1.2, 2.0])
    y_a, y_b = torch.tensor([1.0, 0.0, 1.0]), torch.tensor([0.0, 0.0, 1.0])
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    expected = 0.7 * bce(logits, y_a) + 0.3 * bce(logits, y_b)
    assert torch.allclose(mixed_bce(logits, y_a, y_b, 0.7), expected)


def test_augmentation_reproducible_and_in_range():
    torch.manual_seed(0)
    x = torch.rand(4, 1, 64, 64) * 2048 - 1024
    cfg = AugmentConfig()
    a = augment_batch(x, cfg, torch.Generator().manual_seed(7))
    b = augment_batch(x, cfg, torch.Generator().manual_seed(7))
    c = augment_batch(x, cfg, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.shape == x.shape
    assert a.min() >= -1024.5 and a.max() <= 1024.5
    # small geometric change: the augmented image stays close to the original
    smooth = torch.linspace(-1024, 1024, 64).view(1, 1, 1, 64).expand(4, 1, 64, 64)
    no_mask = AugmentConfig(mask_p=0.0, blur_p=0.0, hflip_p=0.0)
    moved = augment_batch(smooth, no_mask, torch.Generator().manual_seed(1))
    assert (moved - smooth).abs().mean() < 150


def test_flip_and_blur_and_mask_each_act():
    x = torch.linspace(-1024, 1024, 32).view(1, 1, 1, 32).expand(2, 1, 32, 32).contiguous()
    only_flip = AugmentConfig(rotation_deg=0, crop_scale_min=1, crop_scale_max=1, hflip_p=1.0,
                              blur_p=0, mask_p=0)  # fmt: skip
    g = torch.Generator().manual_seed(0)
    flipped = augment_batch(x, only_flip, g)
    # aspect jitter of the crop is still on; the gradient direction must reverse
    assert (flipped[..., 0] > flipped[..., -1]).all()
    only_mask = AugmentConfig(rotation_deg=0, crop_scale_min=1, crop_scale_max=1, hflip_p=0,
                              blur_p=0, mask_p=1.0, mask_fraction=0.25)  # fmt: skip
    masked = augment_batch(x + 2000, only_mask, g)  # no pixel is naturally 0
    share = (masked == 0).float().mean().item()
    assert 0.18 < share < 0.32
