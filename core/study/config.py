"""`StudyConfig`: everything that starts a study, round-tripping to JSON.

The CLI builds one from `bpd study` flags, the app's Train page writes one for
`bpd study --config FILE`. Torch-free, so the app may import it.

Every arm runs the same base recipe (`train`: folds, repeats, seed, resolution, batch,
learning rates) and differs only in what the arm names: the initialisation and the
strategy (docs/method.md). Arms without the linear probe fine-tune for
`epochs_without_probe` epochs (the paper's 30 = its 10 probe + 20 fine-tuning epochs).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.cohort.source import CohortSource
from core.errors import InputError
from core.training.config import INITS, PRESETS, CutMixConfig, TrainConfig, preset

STUDY_KIND = "bpd-study"
STUDY_VERSION = 1

# study strategy -> (TrainConfig.strategy, CutMix during fine-tuning, one-line title)
STRATEGIES: dict[str, tuple[str, bool, str]] = {
    "linear-probe": ("probe", False, "linear probe only (head on the frozen backbone)"),
    "full": ("full", False, "full fine-tuning"),
    "progressive": ("progressive", False, "progressive freezing"),
    "progressive+cutmix": ("progressive", True, "progressive freezing + CutMix"),
    "probe+progressive": (
        "probe+progressive",
        True,
        "linear probe, then progressive freezing + CutMix (the paper's best)",
    ),
}
INIT_TITLES = {"xrv": "adult-CXR", "imagenet": "ImageNet", "random": "random"}


@dataclass(frozen=True)
class Arm:
    """One cell of the grid: an initialisation and a strategy, and the run it trains."""

    init: str
    strategy: str  # a key of STRATEGIES
    train: TrainConfig  # the arm's whole recipe

    @property
    def name(self) -> str:
        """Its run folder's name in the study (arms/<name>)."""
        return f"{self.init}-{self.strategy}"

    @property
    def title(self) -> str:
        return f"{INIT_TITLES[self.init]} init, {STRATEGIES[self.strategy][2]}"


@dataclass(frozen=True)
class StudyConfig:
    cohort: CohortSource
    train: TrainConfig  # the recipe every arm shares; its init and strategy are the arms'
    inits: tuple[str, ...] = INITS
    strategies: tuple[str, ...] = tuple(STRATEGIES)
    preset: str = "paper"  # which preset `train` started from (for the record)
    epochs_without_probe: int | None = None  # None: default_epochs_without_probe
    report: bool = True  # each arm's report.html beside the study report

    def __post_init__(self) -> None:
        if self.cohort.outcome is None:
            raise InputError("a study needs an outcome column and its positive values")
        self.cohort.outcome.require_complete(self.cohort.table)
        object.__setattr__(self, "inits", _unique(self.inits, INITS, "init"))
        object.__setattr__(self, "strategies", _unique(self.strategies, STRATEGIES, "strategy"))
        if self.preset not in PRESETS:
            raise InputError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        if self.epochs_without_probe is not None and int(self.epochs_without_probe) < 1:
            raise InputError("epochs_without_probe must be at least 1")

    @property
    def fine_tune_epochs_without_probe(self) -> int:
        if self.epochs_without_probe is not None:
            return int(self.epochs_without_probe)
        return default_epochs_without_probe(self.train, self.preset)

    def arms(self) -> list[Arm]:
        """Every init x strategy, in the order given: init-major."""
        out = []
        for init in self.inits:
            for name in self.strategies:
                strategy, cutmix, _ = STRATEGIES[name]
                changes: dict[str, Any] = {
                    "init": init,
                    "strategy": strategy,
                    "cutmix_finetune": CutMixConfig(
                        enabled=cutmix,
                        p=self.train.cutmix_finetune.p,
                        alpha=self.train.cutmix_finetune.alpha,
                    ),
                }
                if not strategy.startswith("probe"):
                    changes["epochs"] = self.fine_tune_epochs_without_probe
                out.append(Arm(init, name, self.train.replace(**changes)))
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": STUDY_KIND,
            "version": STUDY_VERSION,
            "cohort_source": self.cohort.to_json(),
            "train": self.train.to_json(),
            "preset": self.preset,
            "inits": list(self.inits),
            "strategies": list(self.strategies),
            "epochs_without_probe": self.epochs_without_probe,
            "report": self.report,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StudyConfig:
        if not isinstance(data, Mapping) or data.get("kind") != STUDY_KIND:
            raise InputError(f'not a study config (needs "kind": "{STUDY_KIND}")')
        if int(data.get("version", 1)) > STUDY_VERSION:
            raise InputError(
                f"study config version {data.get('version')} is newer than this BPD Studio "
                f"reads ({STUDY_VERSION}); update BPD Studio"
            )
        for key in ("cohort_source", "train"):
            if key not in data:
                raise InputError(f"a study config needs {key!r}")
        name = str(data.get("preset", "paper"))
        return cls(
            cohort=CohortSource.from_json(data["cohort_source"]),
            train=TrainConfig.from_json(data["train"]),
            inits=tuple(data.get("inits") or INITS),
            strategies=tuple(data.get("strategies") or STRATEGIES),
            preset=name,
            epochs_without_probe=data.get("epochs_without_probe"),
            report=bool(data.get("report", True)),
        )

    def write(self, path: str | Path) -> Path:
        """The JSON file `bpd study --config` reads, written atomically."""
        from core.atomic import atomic_write_json

        atomic_write_json(Path(path), self.to_json())
        return Path(path)


def default_epochs_without_probe(train: TrainConfig, preset_name: str) -> int:
    """`paper`: probe + fine-tuning epochs (10 + 20 = 30, as the paper trains `full` and
    `progressive`); a quick preset keeps its fine-tuning epochs (its probe runs on cached
    features, so adding its 40 probe epochs would multiply the time)."""
    if preset_name == "paper":
        return train.epochs + train.probe_epochs
    return train.epochs


def read_study_config(path: str | Path) -> StudyConfig:
    """`bpd study --config FILE`; relative table and images-root paths are relative to
    FILE's folder. Bad JSON or settings are an InputError naming the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the study config: {exc}", file=path) from None
    try:
        cfg = StudyConfig.from_json(data)
    except InputError as exc:
        raise InputError(exc.detail, file=path) from None
    cohort = cfg.cohort
    root = (path.parent / cohort.images_root).resolve() if cohort.images_root else None
    cohort = cohort.replace(
        table=str((path.parent / cohort.table).resolve()),
        images_root=str(root) if root else None,
    )
    return StudyConfig(
        cohort, cfg.train, cfg.inits, cfg.strategies, cfg.preset,
        cfg.epochs_without_probe, cfg.report,
    )  # fmt: skip


def study_train_config(preset_name: str, overrides: Mapping[str, Any]) -> TrainConfig:
    """The shared recipe: a preset with the given TrainConfig fields changed."""
    return preset(preset_name).replace(**{k: v for k, v in overrides.items() if v is not None})


def _unique(values: Sequence[str], allowed: Any, what: str) -> tuple[str, ...]:
    out: list[str] = []
    for v in values:
        if v not in allowed:
            raise InputError(f"unknown {what} {v!r}; choose from {', '.join(allowed)}")
        if v not in out:
            out.append(v)
    if not out:
        raise InputError(f"a study needs at least one {what}")
    return tuple(out)
