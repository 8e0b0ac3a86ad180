"""What trains when, and at which learning rate.

A fold is a list of epochs (`EpochPlan`, core.training.plan): first the linear probe
(head only, its own AdamW, constant lr), then fine-tuning:

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

import torch
from torch import nn

from core.training.config import TrainConfig

# The plan and its work are torch-free (the app estimates from them); the training loop
# and the tests reach them through this module too.
from core.training.estimate import BACKWARD_COST, fold_work  # noqa: F401
from core.training.plan import (  # noqa: F401
    FULL_GROUPS,
    PROBE_GROUPS,
    PROGRESSIVE_GROUPS,
    EpochPlan,
    fold_plan,
    unfreeze_epochs,
)


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
