"""The training step's fast forward computes what the model computes, and epochs that
train only the head never run the backbone's backward pass (nor, for the cached probe,
its forward pass once per epoch). Real radiographs from the demo cohort, tiny sizes."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from core.models.registry import create_model
from core.training import schedule as sch
from core.training.config import TrainConfig
from core.training.fastpath import FastForward
from core.training.folds import make_folds
from core.training.loop import FoldTrainer
from core.training.runtime import Runtime
from tests.core.test_training_run import demo_subset

CPU32 = Runtime(torch.device("cpu"), "fp32", channels_last=True)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    torch.set_num_threads(1)
    return demo_subset(tmp_path_factory.mktemp("fast"), 4, 64)


def _batch(data, n=4):
    from core.cohort.preprocess import to_model_input

    x = to_model_input(data.pixels[:n])[:, None]
    return x.contiguous(memory_format=torch.channels_last)


def _final_stage(model, frozen_bn_train_mode=True):
    cfg = TrainConfig(strategy="progressive", epochs=4, frozen_bn_train_mode=frozen_bn_train_mode)
    plan = sch.fold_plan(cfg)[-1]
    assert plan.trainable == ("head", "layer4", "layer3", "layer2")
    sch.apply_freezing(model, plan)
    sch.set_train_modes(model, plan, cfg)
    return plan


def _two_models():
    a = create_model("random", seed=3).to(memory_format=torch.channels_last)
    b = create_model("random", seed=3).to(memory_format=torch.channels_last)
    return a, b


def _grads(model):
    return {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


def test_fast_forward_equals_the_model_with_frozen_bn_in_train_mode(data):
    x = _batch(data)
    ref, fast_model = _two_models()
    for m in (ref, fast_model):
        _final_stage(m)
    # A random-init ResNet-50 whose BatchNorms normalise over a few values per channel
    # (batch 4, 2x2 at layer4) amplifies rounding: on some CPUs (AVX2) any fp32 gradient is
    # a few percent from float64, so two fp32 summation orders cannot agree to 1e-3.
    # Judge the fast path by its distance to a float64 reference, against the plain model's.
    ref64 = copy.deepcopy(ref).double()
    fast = FastForward(fast_model, gemm_1x1=True, fold_frozen_bn=False)
    fast.prepare(("layer4", "layer3", "layer2"), whole_backbone=False)
    f_ref, f_fast = ref.forward_features(x), fast.forward_features(x)
    torch.testing.assert_close(f_fast, f_ref, rtol=1e-4, atol=1e-4)
    for features in (f_ref, f_fast, ref64.forward_features(x.double())):
        features.sum().backward()
    g64, g_ref, g_fast = _grads(ref64), _grads(ref), _grads(fast_model)
    assert set(g_ref) == set(g_fast) == set(g64)
    assert g_fast and not any(n.startswith(("backbone.conv1", "backbone.bn1", "backbone.layer1"))
                              for n in g_fast)  # fmt: skip
    for name in g64:
        plain_err, fast_err = (_rel_err(g[name], g64[name]) for g in (g_ref, g_fast))
        # a wrong gradient is off by its own size (error ~1); rounding only by plain_err
        assert fast_err <= 1.5 * plain_err + 1e-5, (name, fast_err, plain_err)
    # frozen BN in train mode still updates its running statistics, as in the model
    torch.testing.assert_close(
        fast_model.backbone.layer1[0].bn1.running_mean, ref.backbone.layer1[0].bn1.running_mean
    )


def _rel_err(g: torch.Tensor, g64: torch.Tensor) -> float:
    return float((g.double() - g64).norm() / g64.norm().clamp(min=1e-12))


def test_folded_frozen_bn_equals_eval_mode_bn(data):
    x = _batch(data)
    ref, fast_model = _two_models()
    for bn in ref.modules():  # non-trivial statistics to fold
        if isinstance(bn, nn.BatchNorm2d):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    fast_model.load_state_dict(ref.state_dict())
    for m in (ref, fast_model):
        _final_stage(m, frozen_bn_train_mode=False)
    assert not ref.backbone.layer1[0].bn1.training and ref.backbone.layer2[0].bn1.training
    fast = FastForward(fast_model, gemm_1x1=True, fold_frozen_bn=True)
    fast.prepare(("layer4", "layer3", "layer2"), whole_backbone=False)
    assert fast._folded, "the frozen prefix's BatchNorm should have been folded"
    torch.testing.assert_close(
        fast.forward_features(x), ref.forward_features(x), rtol=1e-3, atol=1e-3
    )


def _trainer(data, cfg, model=None):
    fold = make_folds(data.labels, 2, 1, cfg.seed, "stratified")[0]
    model = model or create_model("random", seed=1)
    return FoldTrainer(data, fold, cfg, CPU32, model, emit=lambda *a, **k: None)


def test_head_only_steps_run_no_backbone_backward(data):
    cfg = TrainConfig(strategy="progressive", epochs=10, batch_size=4, resolution=64)
    trainer = _trainer(data, cfg)
    backward_calls = []
    trainer.model.backbone.layer4[-1].bn3.register_full_backward_hook(
        lambda *a: backward_calls.append(1)
    )
    plans = sch.fold_plan(cfg)
    head_plan, last_plan = plans[0], plans[-1]
    assert head_plan.head_only
    trainer._finetune_optimizer()
    for plan in (head_plan, last_plan):
        sch.apply_freezing(trainer.model, plan)
        trainer.begin_image_epoch(plan)
        trainer.train_step(plan, trainer.train_idx[:4], trainer.ft_opt, trainer.ft_sched)
        grads = [n for n, p in trainer.model.backbone.named_parameters() if p.grad is not None]
        if plan is head_plan:
            assert not backward_calls and not grads
            assert trainer.model.head[1].weight.grad is not None
        else:  # the check can fail: the final stage does run layer4's backward
            assert backward_calls and any(n.startswith("layer4") for n in grads)


@pytest.mark.parametrize("probe_epochs", [2, 5])
def test_cached_probe_runs_the_backbone_once_not_per_epoch(data, probe_epochs):
    cfg = TrainConfig(strategy="probe", probe_epochs=probe_epochs, batch_size=4, resolution=64,
                      eval_every_epoch=False)  # fmt: skip
    trainer = _trainer(data, cfg)
    calls = []
    trainer.model.backbone.layer4[-1].bn3.register_forward_hook(
        lambda m, i, o: calls.append(len(o))
    )
    trainer.run()
    n_train, n_test = len(trainer.train_idx), len(trainer.test_idx)
    needed = len(np.union1d(trainer.train_idx, trainer.test_idx))
    # BN re-estimation (train images) + one feature pass + final scoring, nothing per epoch
    assert sum(calls) == n_train + needed + n_test
    assert all(p.grad is None for p in trainer.model.backbone.parameters())
