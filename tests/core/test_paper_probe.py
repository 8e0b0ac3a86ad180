"""The `paper` preset's linear probe is the authors': augmented batches through the
backbone with its BatchNorm in train mode (batch statistics). `cpu-fast` keeps the probe
on features computed once, without augmentation (docs/method.md)."""

from __future__ import annotations

import pytest
import torch

import core.training.loop as loop
from core.training.config import cpu_fast_preset, paper_preset
from core.training.folds import make_folds
from core.training.loop import FoldTrainer
from core.training.runtime import resolve_runtime
from tests.core.test_training_run import demo_subset, random_model

TINY = {
    "init": "random",
    "resolution": 32,
    "strategy": "probe",
    "probe_epochs": 2,
    "batch_size": 4,
    "cv_folds": 2,
    "cv_repeats": 1,
    "device": "cpu",
    "precision": "fp32",
    "eval_every_epoch": False,
}


def test_presets_name_their_probe():
    assert paper_preset().probe_augment and not paper_preset().uses_feature_cache
    assert paper_preset().frozen_bn_train_mode
    assert not cpu_fast_preset().probe_augment and cpu_fast_preset().uses_feature_cache


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return demo_subset(tmp_path_factory.mktemp("probe"), 5, 32)


def _spied_probe(data, cfg, monkeypatch):
    """Train a fold's probe; returns (trainer, augment calls, [(bn1.training, batch)],
    bn1 running mean before)."""
    augmented: list[int] = []
    real_augment = loop.augment_batch

    def spy_augment(x, aug_cfg, gen):
        augmented.append(x.shape[0])
        return real_augment(x, aug_cfg, gen)

    monkeypatch.setattr(loop, "augment_batch", spy_augment)
    fold = make_folds(data.labels, cfg.cv_folds, 1, cfg.seed, cfg.cv_scheme)[0]
    trainer = FoldTrainer(
        data, fold, cfg, resolve_runtime(cfg), random_model(1), emit=lambda *a, **k: None
    )
    bn = trainer.model.backbone.bn1
    calls: list[tuple[bool, int]] = []
    bn.register_forward_pre_hook(lambda m, args: calls.append((m.training, args[0].shape[0])))
    before = bn.running_mean.clone()
    trainer.train_epochs()
    return trainer, augmented, calls, before


@pytest.mark.slow
def test_paper_probe_sees_augmented_batches_with_batch_statistics(data, monkeypatch):
    cfg = paper_preset().replace(**TINY)
    trainer, augmented, calls, before = _spied_probe(data, cfg, monkeypatch)
    steps = trainer.n_steps * cfg.probe_epochs
    assert trainer.features is None  # no feature cache
    assert len(augmented) == steps and set(augmented) == {cfg.batch_size}
    # every probe batch went through the backbone, its BatchNorm in train mode
    assert len(calls) == steps and all(training for training, _ in calls)
    assert not torch.equal(trainer.model.backbone.bn1.running_mean, before)


@pytest.mark.slow
def test_cpu_fast_probe_trains_on_cached_unaugmented_features(data, monkeypatch):
    cfg = cpu_fast_preset().replace(**TINY)
    trainer, augmented, calls, _ = _spied_probe(data, cfg, monkeypatch)
    assert trainer.features is not None and augmented == []
    # one train-mode pass re-estimates BN statistics, then features in eval mode, once
    n_train = len(trainer.train_idx)
    assert sum(n for training, n in calls if training) <= n_train
    assert any(not training for training, _ in calls)
    n_cached = sum(n for training, n in calls if not training)
    assert n_cached == len(set(trainer.train_idx) | set(trainer.test_idx))
