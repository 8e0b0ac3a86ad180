"""Everything that starts a run, whoever starts it: `RunConfig`.

The CLI builds one from its flags, the app from its Train form, and `bpd train --config
FILE` reads one from JSON. Its JSON is the run folder's config.json (docs/run-folder.md):

    train          TrainConfig (every number of the recipe; docs/method.md)
    cohort_source  core.cohort.source.CohortSource
    preprocess     core.cohort.preprocess.PreprocessConfig (follows train.resolution)
    options        {"final_model": bool, "report": bool, "workers": int (absent or 0:
                   automatic)}
    versions       package versions of the run (filled in when the run is created)
    seed           train.seed, repeated for readers of the file
    created        ISO time the run was created (null in a config not yet run)
    crops          the crop boxes used (core.cohort.crops rows, by image content hash),
                   read from cohort_source's sidecar when the run is created; absent
                   when the cohort has no sidecar

config.json files written before this type existed have the same keys and load as they are.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.cohort.crops import CropTable
from core.cohort.preprocess import PreprocessConfig
from core.cohort.source import CohortSource
from core.errors import InputError
from core.training.config import TrainConfig


@dataclass(frozen=True)
class RunOptions:
    """What a run does beyond the recipe; kept so `bpd resume` repeats it."""

    final_model: bool = False  # also train one model on every patient (RUN_DIR/final_model)
    report: bool = True  # write report.html at the end
    # folds trained at once in worker processes; 0: the rule of core.training.parallel
    workers: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.workers, int) or self.workers < 0:
            raise InputError(f"workers must be 0 (automatic) or more, not {self.workers!r}")

    def to_json(self) -> dict[str, Any]:
        # "workers" only when set: a config.json without it reads and writes back the same
        workers = {"workers": self.workers} if self.workers else {}
        return {"final_model": self.final_model, "report": self.report, **workers}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> RunOptions:
        data = data or {}
        return cls(
            bool(data.get("final_model", False)),
            bool(data.get("report", True)),
            data.get("workers", 0),
        )


@dataclass(frozen=True)
class RunConfig:
    train: TrainConfig
    cohort: CohortSource
    options: RunOptions = field(default_factory=RunOptions)
    versions: Mapping[str, str] = field(default_factory=dict)
    created: str | None = None
    # None: the images at train.resolution, whole (no centre crop)
    image_preprocess: PreprocessConfig | None = None
    # the boxes the run trains with; None: not read yet (with_crops) or no sidecar
    crops: CropTable | None = None

    def __post_init__(self) -> None:
        if self.cohort.outcome is None:
            raise InputError("a run needs an outcome column and its positive values")
        self.cohort.outcome.require_complete(self.cohort.table)
        object.__setattr__(self, "versions", dict(self.versions))
        pre = self.image_preprocess
        if pre is not None and pre.resolution != self.train.resolution:
            raise InputError(
                f"preprocess resolution {pre.resolution} differs from the training "
                f"resolution {self.train.resolution}"
            )

    @property
    def seed(self) -> int:
        return self.train.seed

    @property
    def preprocess(self) -> PreprocessConfig:
        """How images are prepared for this run (and for predictions from it)."""
        return self.image_preprocess or PreprocessConfig(resolution=self.train.resolution)

    def with_crops(self) -> RunConfig:
        """The cohort sidecar's used boxes read into the config (once, when a run is
        created), so the run keeps the boxes it trained with whatever the sidecar becomes."""
        if self.crops is not None or not self.cohort.crops:
            return self
        return self.replace(crops=self.cohort.crop_table().used())

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "train": self.train.to_json(),
            "cohort_source": self.cohort.to_json(),
            "preprocess": self.preprocess.to_json(),
            "versions": dict(self.versions),
            "seed": self.seed,
            "created": self.created,
            "options": self.options.to_json(),
            **({"crops": self.crops.to_json()} if self.crops is not None else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunConfig:
        if not is_run_config_json(data):
            raise InputError("a run config needs 'train' and 'cohort_source'")
        return cls(
            train=TrainConfig.from_json(data["train"]),
            cohort=CohortSource.from_json(data["cohort_source"]),
            options=RunOptions.from_json(data.get("options")),
            versions=data.get("versions") or {},
            created=data.get("created"),
            image_preprocess=_preprocess(data.get("preprocess")),
            crops=CropTable.from_json(data["crops"]) if "crops" in data else None,
        )

    def write(self, path: str | Path) -> Path:
        """The JSON file `bpd train --config` reads, written atomically."""
        from core.atomic import atomic_write_json

        atomic_write_json(Path(path), self.to_json())
        return Path(path)


def _preprocess(data: Mapping[str, Any] | None) -> PreprocessConfig | None:
    """The recorded preprocessing, kept only where it says more than the resolution."""
    if not data:
        return None
    pre = PreprocessConfig.from_json(dict(data))
    return pre if pre.center_crop is not None else None


def is_run_config_json(data: Any) -> bool:
    """A whole RunConfig (as opposed to a bare TrainConfig, which `--config` also takes)."""
    return isinstance(data, Mapping) and "train" in data and "cohort_source" in data


def read_config_file(path: str | Path) -> RunConfig | TrainConfig:
    """`bpd train --config FILE`: a RunConfig JSON (cohort included) or a bare
    TrainConfig JSON. Bad JSON or settings are an InputError naming the file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the config: {exc}", file=path) from None
    try:
        if is_run_config_json(data):
            return RunConfig.from_json(data)
        return TrainConfig.from_json(data)
    except InputError as exc:
        raise InputError(exc.detail, file=path) from None
