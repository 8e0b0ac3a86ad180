"""TrainConfig: JSON round trip, unknown keys refused, presets as documented."""

from __future__ import annotations

import dataclasses
import json

import pytest

from core.errors import InputError
from core.training.config import TrainConfig, cpu_fast_preset, paper_preset, preset


def test_json_round_trip_through_text():
    cfg = cpu_fast_preset().replace(init="imagenet", strategy="probe+full", seed=9)
    cfg = cfg.replace(
        cutmix_probe=dataclasses.replace(cfg.cutmix_probe, enabled=True),
        augment=dataclasses.replace(cfg.augment, rotation_deg=3.0),
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 3
    text = json.dumps(cfg.to_json())
    back = TrainConfig.from_json(json.loads(text))
    assert back == cfg
    assert back.cutmix_probe.enabled and back.augment.rotation_deg == 3.0


@pytest.mark.parametrize(
    "data, match",
    [
        ({"epochz": 3}, "unknown setting"),
        ({"augment": {"rotation": 5}}, "augment: unknown setting"),
        ({"strategy": "fast"}, "strategy"),
        ({"cv_folds": 1}, "at least 2 folds"),
        ({"precision": "int8"}, "precision"),
    ],
)
def test_bad_settings_are_input_errors(data, match):
    with pytest.raises(InputError, match=match):
        TrainConfig.from_json(data)


def test_paper_preset_is_the_published_recipe():
    cfg = paper_preset()
    assert (cfg.init, cfg.resolution, cfg.strategy) == ("xrv", 512, "probe+progressive")
    assert (cfg.probe_epochs, cfg.epochs, cfg.batch_size) == (10, 20, 8)
    assert (cfg.cv_folds, cfg.cv_repeats) == (5, 6)
    assert (cfg.lr_head, cfg.lr_layer4, cfg.lr_layer3, cfg.lr_layer2) == (1e-3, 5e-4, 2.5e-4, 1e-4)
    assert (cfg.wd_head, cfg.wd_backbone, cfg.pct_start) == (1e-5, 1e-4, 0.3)
    assert (cfg.unfreeze_layer4, cfg.unfreeze_layer3, cfg.unfreeze_layer2) == (0.1, 0.3, 0.6)
    assert (cfg.probe_lr, cfg.probe_wd) == (1e-3, 1e-4)
    assert not cfg.cutmix_probe.enabled and cfg.cutmix_finetune.enabled
    assert (cfg.cutmix_finetune.p, cfg.cutmix_finetune.alpha) == (0.5, 1.0)
    assert cfg.frozen_bn_train_mode and cfg.balance == "sampler" and cfg.threshold == 0.5
    assert cfg.total_epochs == 30


def test_cpu_fast_preset_is_small():
    cfg = preset("cpu-fast")
    assert cfg.resolution <= 224 and cfg.cv_folds == 5 and cfg.cv_repeats == 1
    assert cfg.strategy == "probe+progressive"
    with pytest.raises(InputError, match="unknown preset"):
        preset("gpu-slow")
