"""Training settings: every number of the method (docs/method.md) is a field here.

`TrainConfig` round-trips to JSON (config.json of a run is enough to repeat it).
Two presets: `paper` (the published recipe, as the authors' code runs it) and `cpu-fast`
(a recipe a CPU-only site can run in minutes; where it differs: its docstring and
docs/method.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

from core.errors import InputError

STRATEGIES = ("full", "progressive", "probe", "probe+progressive", "probe+full")
INITS = ("xrv", "imagenet", "random")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
BALANCES = ("sampler", "pos_weight")
CV_SCHEMES = ("stratified", "paper")
TEST_IMAGES = ("first", "mean")
THRESHOLD_METHODS = ("fixed", "youden")


@dataclass(frozen=True)
class CutMixConfig:
    """CutMix per batch: with probability `p`, lambda ~ Beta(alpha, alpha), then
    recomputed from the box actually pasted."""

    enabled: bool = False
    p: float = 0.5
    alpha: float = 1.0


@dataclass(frozen=True)
class AugmentConfig:
    """Input augmentation of the fine-tuning phase (and of the probe, if enabled)."""

    rotation_deg: float = 5.0
    hflip_p: float = 0.5
    crop_scale_min: float = 0.95
    crop_scale_max: float = 1.05
    blur_kernel: int = 9
    blur_sigma_min: float = 0.05
    blur_sigma_max: float = 2.0
    blur_p: float = 0.5
    mask_p: float = 0.1
    mask_fraction: float = 0.25


@dataclass(frozen=True)
class TrainConfig:
    """One training recipe. Defaults are the paper's (docs/method.md) except two that
    `paper_preset` sets: the probe on augmented batches (`probe_augment`) and the
    authors' 1:1 test folds (`cv_scheme`); the bare defaults keep the cheaper cached
    probe and stratified folds for configs and tests that name neither. Frozen, like
    the RunConfig that holds it: change a copy with `replace`."""

    # model
    init: str = "xrv"
    dropout: float = 0.1
    resolution: int = 512
    # strategy and epochs
    strategy: str = "probe+progressive"
    epochs: int = 20  # fine-tuning epochs E (after the probe)
    probe_epochs: int = 10
    batch_size: int = 8
    # fine-tuning: AdamW peak learning rates per group, one-cycle (cos) stepped per batch
    lr_head: float = 1e-3
    lr_layer4: float = 5e-4
    lr_layer3: float = 2.5e-4
    lr_layer2: float = 1e-4
    lr_backbone_full: float = 2.5e-4  # `full`: the whole backbone as one group
    wd_head: float = 1e-5
    wd_backbone: float = 1e-4
    pct_start: float = 0.3
    # 0-indexed fine-tuning epoch at which a block unfreezes = floor(fraction * E)
    unfreeze_layer4: float = 0.1
    unfreeze_layer3: float = 0.3
    unfreeze_layer2: float = 0.6
    # The authors' code leaves frozen blocks' BatchNorm in train mode (running statistics
    # keep updating). True = the paper; False = frozen blocks' BN in eval mode.
    frozen_bn_train_mode: bool = True
    # linear probe: its own AdamW, constant lr
    probe_lr: float = 1e-3
    probe_wd: float = 1e-4
    # True (the authors' probe, `paper` preset): augmented batches through the backbone
    # in train mode, so its BatchNorm uses batch statistics (frozen_bn_train_mode).
    # False (`cpu-fast`): features computed once per image, the probe trains on the cache.
    probe_augment: bool = False
    cutmix_probe: CutMixConfig = field(default_factory=lambda: CutMixConfig(enabled=False))
    cutmix_finetune: CutMixConfig = field(default_factory=lambda: CutMixConfig(enabled=True))
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # class balance: weighted random sampler (inverse class frequency) or BCE pos_weight
    balance: str = "sampler"
    # cross-validation by patient
    cv_folds: int = 5
    cv_repeats: int = 6
    # "paper" (`paper` preset): the authors' 1:1 test folds, some negatives never tested;
    # "stratified": stratified patient-grouped k-fold, every patient tested once a repeat
    cv_scheme: str = "stratified"
    seed: int = 42
    test_images: str = "first"  # score a test patient by its first image or the mean
    threshold: float = 0.5  # "fixed": this probability; "youden": per fold, see below
    # "youden": each fold's threshold maximises Youden's J on its training patients'
    # out-of-fold scores from an inner cross-validation with this recipe
    # (core.runs.inner_threshold; costs about threshold_inner_folds - 1 extra folds each).
    threshold_method: str = "fixed"
    threshold_inner_folds: int = 3
    eval_every_epoch: bool = True
    # hardware
    device: str = "auto"
    precision: str = "auto"  # auto: fp16 on CUDA (bf16 if supported), bf16 on CPUs with it
    num_threads: int = 0  # 0 = torch's default
    # A resume checkpoint (model + optimizer, ~300 MB for ResNet-50) is written after an
    # epoch only when the last one is at least this old (0: after every epoch): on a
    # CPU at 128 px an epoch takes seconds and writing it took a tenth of the run.
    checkpoint_every_s: float = 60.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        choices = {
            "init": INITS,
            "strategy": STRATEGIES,
            "device": DEVICES,
            "precision": PRECISIONS,
            "balance": BALANCES,
            "cv_scheme": CV_SCHEMES,
            "test_images": TEST_IMAGES,
            "threshold_method": THRESHOLD_METHODS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise InputError(
                    f"setting {name}={getattr(self, name)!r} is not one of {', '.join(allowed)}"
                )
        positive = ("resolution", "batch_size", "cv_folds", "cv_repeats")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise InputError(f"setting {name} must be at least 1, got {getattr(self, name)}")
        if not 0.0 < float(self.threshold) < 1.0:
            raise InputError(f"threshold must lie in (0, 1), got {self.threshold}")
        if self.threshold_method == "youden" and self.threshold_inner_folds < 2:
            raise InputError("threshold_inner_folds must be at least 2 for a Youden threshold")
        if self.cv_folds < 2:
            raise InputError(f"cross-validation needs at least 2 folds, got {self.cv_folds}")
        if self.uses_probe and self.probe_epochs < 1:
            raise InputError(f"strategy {self.strategy!r} needs probe_epochs >= 1")
        if self.finetune_strategy and self.epochs < 1:
            raise InputError(f"strategy {self.strategy!r} needs epochs >= 1")

    @property
    def uses_probe(self) -> bool:
        return self.strategy.startswith("probe")

    @property
    def finetune_strategy(self) -> str | None:
        """ "progressive", "full", or None for a probe only."""
        if self.strategy == "probe":
            return None
        return self.strategy.split("+")[-1]

    @property
    def uses_feature_cache(self) -> bool:
        """The probe trains on features computed once per image: nothing changes its
        input from epoch to epoch (no augmentation, no CutMix in the probe)."""
        return self.uses_probe and not self.probe_augment and not self.cutmix_probe.enabled

    @property
    def total_epochs(self) -> int:
        return (self.probe_epochs if self.uses_probe else 0) + (
            self.epochs if self.finetune_strategy else 0
        )

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainConfig:
        return _from_dict(cls, data, "train config")

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def _from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected an object, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise InputError(f"{where}: unknown setting(s) {', '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    nested = {"cutmix_probe": CutMixConfig, "cutmix_finetune": CutMixConfig}
    nested["augment"] = AugmentConfig
    for name, value in data.items():
        if name in nested:
            kwargs[name] = _from_dict(nested[name], value, f"{where}.{name}")
        else:
            kwargs[name] = value
    return cls(**kwargs)


def paper_preset() -> TrainConfig:
    """The published recipe as the authors' code runs it (docs/method.md): xrv init,
    512 px, a 10-epoch linear probe on augmented batches (no CutMix) with the backbone
    in train mode (BatchNorm on batch statistics), then progressive fine-tuning 20
    epochs with CutMix, batch 8, 6 x repeated 5-fold CV on the authors' 1:1 test folds
    (leftover negatives never tested; the report counts them)."""
    return TrainConfig(probe_augment=True, cv_scheme="paper")


def cpu_fast_preset() -> TrainConfig:
    """A recipe a CPU-only site can run in minutes (about 4 on 2 idle cores for ~160
    patients / ~250 images, import included).

    What changes from `paper`, and why:
    - 128 px instead of 512: compute scales with pixels (16x less); pneumonia-like
      findings survive the downscale.
    - 5 folds x 1 repeat instead of x 6: one pass of cross-validation.
    - the linear probe trains on features computed once per image without augmentation
      (BatchNorm statistics re-estimated in one pass, then eval mode), not on augmented
      batches with batch statistics as the paper's: a different, faster method (its
      effect on AUROC: docs/method.md). Its epochs then cost milliseconds, so it runs 40
      instead of 10, which gives fine-tuning a better-fitted head to start from.
    - stratified patient-grouped folds instead of the authors' 1:1 test folds: every
      patient is tested once (the paper's F1 and precision are on 50 % prevalence).
    - progressive fine-tuning for 8 epochs instead of 20: layer4 from epoch 0, layer3
      from 2, layer2 from 4 (the paper's fractions of E = 8).
    - batch 16: fewer optimizer steps, better CPU throughput.
    - the test fold is still scored after every epoch (for the live AUROC curve; it
      never selects an epoch): free during the cached probe, about a second per
      fine-tuning epoch.
    Everything else (learning rates, weight decays, one-cycle, CutMix in fine-tuning
    only, augmentation, sampler, threshold) is the paper's.
    """
    return TrainConfig(
        probe_augment=False,
        cv_scheme="stratified",
        resolution=128,
        epochs=8,
        probe_epochs=40,
        batch_size=16,
        cv_folds=5,
        cv_repeats=1,
    )


PRESETS = {"paper": paper_preset, "cpu-fast": cpu_fast_preset}


def preset(name: str) -> TrainConfig:
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]()
