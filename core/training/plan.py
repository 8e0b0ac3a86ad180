"""Which epochs a fold runs and what trains in each (torch-free).

A fold is a list of epochs (`EpochPlan`): first the linear probe (head only), then
fine-tuning: progressive (head, then layer4, layer3, layer2 unfreeze at fine-tuning
epoch floor(fraction * E)) or full (head and the whole backbone). The optimizers and
learning rates that go with a plan are in core.training.schedule; the work a plan costs
in core.training.estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.training.config import TrainConfig

PROGRESSIVE_GROUPS = ("head", "layer4", "layer3", "layer2")
FULL_GROUPS = ("head", "backbone")
PROBE_GROUPS = ("head",)


@dataclass(frozen=True)
class EpochPlan:
    epoch: int  # 0-based over the whole fold (probe + fine-tuning)
    stage: str  # "probe" or "finetune"
    stage_epoch: int  # 0-based within the stage
    phase: str  # "probe", "head", "layer4", "layer3", "layer2", "full"
    trainable: tuple[str, ...]  # group names that train in this epoch

    @property
    def head_only(self) -> bool:
        return self.trainable == ("head",)


def unfreeze_epochs(cfg: TrainConfig) -> dict[str, int]:
    """Fine-tuning epoch (0-based) at which each block unfreezes: floor(f * E)."""
    e = cfg.epochs
    return {
        "layer4": math.floor(cfg.unfreeze_layer4 * e),
        "layer3": math.floor(cfg.unfreeze_layer3 * e),
        "layer2": math.floor(cfg.unfreeze_layer2 * e),
    }


def fold_plan(cfg: TrainConfig) -> list[EpochPlan]:
    plans: list[EpochPlan] = []
    if cfg.uses_probe:
        for k in range(cfg.probe_epochs):
            plans.append(EpochPlan(len(plans), "probe", k, "probe", PROBE_GROUPS))
    strategy = cfg.finetune_strategy
    if strategy == "full":
        for k in range(cfg.epochs):
            plans.append(EpochPlan(len(plans), "finetune", k, "full", FULL_GROUPS))
    elif strategy == "progressive":
        at = unfreeze_epochs(cfg)
        for k in range(cfg.epochs):
            unfrozen = [b for b in ("layer4", "layer3", "layer2") if at[b] <= k]
            # phase: the deepest block unfrozen so far ("head" before the first)
            phase = min(unfrozen, key=lambda b: int(b[-1])) if unfrozen else "head"
            trainable = ("head", *[b for b in ("layer4", "layer3", "layer2") if b in unfrozen])
            plans.append(EpochPlan(len(plans), "finetune", k, phase, trainable))
    return plans


def steps_per_epoch(n_train_images: int, batch_size: int) -> int:
    """Full batches per epoch (the sampler draws steps * batch_size images)."""
    return max(1, -(-n_train_images // batch_size))
