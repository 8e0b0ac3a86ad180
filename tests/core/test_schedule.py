"""Which parameters train in each epoch, and at which learning rate."""

from __future__ import annotations

import math

import pytest
import torch

from core.models.registry import build_model
from core.training import schedule as sch
from core.training.config import TrainConfig

STEPS = 2


def _onecycle_lr(peak: float, step: int, total: int, pct: float = 0.3) -> float:
    """Reference one-cycle (cos) lr after `step` scheduler steps (torch's defaults:
    div_factor 25, final_div_factor 1e4)."""
    initial, final = peak / 25, peak / 25 / 1e4
    up_end = float(pct * total) - 1
    if step <= up_end:
        frac = step / up_end
        return final_cos(initial, peak, frac)
    frac = (step - up_end) / (total - 1 - up_end)
    return final_cos(peak, final, frac)


def final_cos(start: float, end: float, frac: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * frac) + 1)


@pytest.fixture(scope="module")
def model():
    return build_model("random", seed=0)


def _names(model, group):
    return {id(p) for p in sch.group_params(model, group)}


def test_progressive_plan_unfreezes_at_paper_fractions():
    cfg = TrainConfig(strategy="probe+progressive", probe_epochs=10, epochs=20)
    plans = sch.fold_plan(cfg)
    assert len(plans) == 30
    assert all(p.trainable == ("head",) and p.phase == "probe" for p in plans[:10])
    ft = plans[10:]
    # floor(0.1*20)=2, floor(0.3*20)=6, floor(0.6*20)=12
    assert [p.phase for p in ft[:2]] == ["head", "head"]
    assert ft[2].trainable == ("head", "layer4")
    assert ft[5].trainable == ("head", "layer4")
    assert ft[6].trainable == ("head", "layer4", "layer3")
    assert ft[11].phase == "layer3"
    assert ft[12].trainable == ("head", "layer4", "layer3", "layer2")
    assert ft[19].phase == "layer2"


def test_trainable_params_and_lrs_follow_schedule(model):
    cfg = TrainConfig(strategy="progressive", epochs=10)
    model = build_model("random", seed=0)
    opt, sched = sch.make_finetune_optimizer(model, cfg, STEPS)
    peaks = sch.peak_lrs(cfg)
    total = cfg.epochs * STEPS
    stem_and_layer1 = [*model.backbone.conv1.parameters(), *model.backbone.bn1.parameters()]
    stem_and_layer1 += list(model.backbone.layer1.parameters())
    before = {g: [p.detach().clone() for p in sch.group_params(model, g)] for g in peaks}
    stem_before = [p.detach().clone() for p in stem_and_layer1]
    step = 0
    x = torch.randn(2, 1, 32, 32)
    for plan in sch.fold_plan(cfg):
        sch.apply_freezing(model, plan)
        sch.begin_epoch_lrs(opt, sched, plan)
        trainable = {id(p) for p in model.parameters() if p.requires_grad}
        expected = set().union(*(_names(model, g) for g in plan.trainable))
        assert trainable == expected, plan
        assert not any(p.requires_grad for p in stem_and_layer1)
        for _ in range(STEPS):
            lrs = sch.current_lrs(opt)
            for group, lr in lrs.items():
                if group in plan.trainable:
                    assert lr == pytest.approx(_onecycle_lr(peaks[group], step, total), rel=1e-6)
                else:
                    assert lr == 0.0, (plan, group)
            opt.zero_grad(set_to_none=True)
            model.train()
            model(x).sum().backward()
            opt.step()
            sched.step()
            sch.mask_frozen_lrs(opt, plan)
            step += 1
        # a group that has never trained must not have moved (no step, no weight decay)
        for group in peaks:
            moved = any(
                not torch.equal(a, b)
                for a, b in zip(before[group], sch.group_params(model, group), strict=True)
            )
            unfrozen_yet = any(group in p.trainable for p in sch.fold_plan(cfg)[: plan.epoch + 1])
            assert moved == unfrozen_yet, (plan, group)
    assert all(torch.equal(a, b) for a, b in zip(stem_before, stem_and_layer1, strict=True))


def test_full_strategy_two_groups():
    cfg = TrainConfig(strategy="full", epochs=4)
    plans = sch.fold_plan(cfg)
    assert [p.trainable for p in plans] == [("head", "backbone")] * 4
    model = build_model("random", seed=0)
    opt, _ = sch.make_finetune_optimizer(model, cfg, 2)
    assert [g["name"] for g in opt.param_groups] == ["head", "backbone"]
    assert [g["weight_decay"] for g in opt.param_groups] == [1e-5, 1e-4]
    assert sch.peak_lrs(cfg) == {"head": 1e-3, "backbone": 2.5e-4}


def test_probe_optimizer_constant_lr():
    cfg = TrainConfig()
    model = build_model("random", seed=0)
    opt = sch.make_probe_optimizer(model, cfg)
    assert len(opt.param_groups) == 1
    assert opt.param_groups[0]["lr"] == 1e-3
    assert opt.param_groups[0]["weight_decay"] == 1e-4
    assert {id(p) for p in opt.param_groups[0]["params"]} == _names(model, "head")


@pytest.mark.parametrize("paper_bn", [True, False])
def test_frozen_batchnorm_mode(paper_bn):
    cfg = TrainConfig(strategy="progressive", epochs=10, frozen_bn_train_mode=paper_bn)
    model = build_model("random", seed=0)
    plan = sch.fold_plan(cfg)[1]  # layer4 trains, the rest is frozen
    sch.set_train_modes(model, plan, cfg)
    assert model.backbone.layer4[0].bn1.training
    assert model.backbone.layer3[0].bn1.training == paper_bn
    assert model.backbone.bn1.training == paper_bn
    assert model.head.training
