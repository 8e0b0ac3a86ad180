"""What trains when, and at which learning rate.

A fold is a list of epochs (`EpochPlan`): first the linear probe (head only, its own
AdamW, constant lr), then fine-tuning:

- progressive: parameter groups head, layer4, layer3, layer2 with discriminative peak
  lrs; a block unfreezes at fine-tuning epoch floor(fraction * E); conv1/bn1/layer1
  never train. Before the first unfreeze only the head trains.
- full: two groups, head and the whole backbone.

Fine-tuning uses one AdamW and one OneCycleLR (pct_start 0.3, cosine) stepped per batch
over all fine-tuning epochs, with every group in the optimizer from the start so each
group's one-cycle curve is the paper's. A frozen group does not step: its parameters
have requires_grad=False (no gradient, so AdamW skips them, weight decay included) and
its lr is set to 0 after every scheduler step (`mask_frozen_lrs`), which is also the lr
the events report for it. OneCycleLR recomputes lrs from the step count, so the masking
does not disturb the curve once the group unfreezes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

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


def group_params(model: nn.Module, name: str) -> list[nn.Parameter]:
    if name == "head":
        return list(model.head.parameters())
    if name == "backbone":
        return list(model.backbone.parameters())
    return list(model.block(name).parameters())


def finetune_groups(cfg: TrainConfig) -> tuple[str, ...]:
    return FULL_GROUPS if cfg.finetune_strategy == "full" else PROGRESSIVE_GROUPS


def peak_lrs(cfg: TrainConfig) -> dict[str, float]:
    if cfg.finetune_strategy == "full":
        return {"head": cfg.lr_head, "backbone": cfg.lr_backbone_full}
    return {
        "head": cfg.lr_head,
        "layer4": cfg.lr_layer4,
        "layer3": cfg.lr_layer3,
        "layer2": cfg.lr_layer2,
    }


def make_finetune_optimizer(
    model: nn.Module, cfg: TrainConfig, steps_per_epoch: int
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.OneCycleLR]:
    lrs = peak_lrs(cfg)
    groups = [
        {
            "params": group_params(model, name),
            "lr": lrs[name],
            "weight_decay": cfg.wd_head if name == "head" else cfg.wd_backbone,
            "name": name,
        }
        for name in finetune_groups(cfg)
    ]
    optimizer = torch.optim.AdamW(groups, **_fast_kernel(model))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=[lrs[g["name"]] for g in groups],
        total_steps=max(1, cfg.epochs * steps_per_epoch),
        pct_start=cfg.pct_start,
        anneal_strategy="cos",
    )
    return optimizer, scheduler


def make_probe_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(
        [{"params": list(model.head.parameters()), "name": "head"}],
        lr=cfg.probe_lr,
        weight_decay=cfg.probe_wd,
        **_fast_kernel(model),
    )


def _fast_kernel(model: nn.Module) -> dict[str, bool]:
    """The fused AdamW kernel (one pass over all tensors) where the device has one;
    the default per-tensor loop costs ~0.5 s per step for ResNet-50 blocks on a CPU."""
    device = next(model.parameters()).device.type
    return {"fused": True} if device in ("cpu", "cuda") else {}


def apply_freezing(model: nn.Module, plan: EpochPlan) -> None:
    """requires_grad True exactly for the parameters of the plan's trainable groups."""
    for p in model.parameters():
        p.requires_grad_(False)
    for name in plan.trainable:
        for p in group_params(model, name):
            p.requires_grad_(True)


def set_train_modes(model: nn.Module, plan: EpochPlan, cfg: TrainConfig) -> None:
    """model.train(), then frozen blocks' BatchNorm to eval unless the paper's
    train-mode behaviour is asked for (frozen_bn_train_mode)."""
    model.train()
    if cfg.frozen_bn_train_mode:
        return
    if "backbone" in plan.trainable:
        return
    backbone = model.backbone
    frozen = [
        backbone.bn1,
        *(getattr(backbone, b) for b in ("layer1", "layer2", "layer3", "layer4")),
    ]
    trainable_blocks = {model.block(b) for b in plan.trainable if b.startswith("layer")}
    for module in frozen:
        if module in trainable_blocks:
            continue
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


def mask_frozen_lrs(optimizer: torch.optim.Optimizer, plan: EpochPlan) -> None:
    """lr 0 for groups that do not train in this epoch (see module docstring)."""
    for group in optimizer.param_groups:
        if group["name"] not in plan.trainable:
            group["lr"] = 0.0


def current_lrs(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    return {g["name"]: float(g["lr"]) for g in optimizer.param_groups}


def begin_epoch_lrs(
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    plan: EpochPlan,
) -> None:
    """Restore the scheduler's current lr for groups that (re)start training this epoch
    (their lr was masked to 0 while frozen), then mask the still-frozen ones."""
    for group, lr in zip(optimizer.param_groups, scheduler.get_last_lr(), strict=True):
        group["lr"] = lr
    mask_frozen_lrs(optimizer, plan)


BACKWARD_COST = 2.0  # work units of a backward pass relative to one forward


def steps_per_epoch(n_train_images: int, batch_size: int) -> int:
    """Full batches per epoch (the sampler draws steps * batch_size images)."""
    return max(1, -(-n_train_images // batch_size))


def fold_work(cfg: TrainConfig, n_train: int, n_test: int) -> float:
    """Work units of one fold for progress and ETA: image forward passes, a backward
    pass counting BACKWARD_COST; cached-probe epochs cost ~nothing, their one feature
    pass (BN re-estimation on training images + every image) is counted instead."""
    from core.training.features import uses_feature_cache

    n_samples = steps_per_epoch(n_train, cfg.batch_size) * cfg.batch_size
    cached = uses_feature_cache(cfg)
    plans = fold_plan(cfg)
    total = 2.0 * n_train + n_test if cached else 0.0
    for plan in plans:
        if plan.stage == "probe" and cached:
            continue
        last = plan.epoch == len(plans) - 1
        evals = n_test if (cfg.eval_every_epoch or last) else 0
        total += n_samples * (1.0 if plan.head_only else 1.0 + BACKWARD_COST) + evals
    return total
