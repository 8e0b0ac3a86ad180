"""What a fold needs besides its patients: one object instead of seven arguments.

The runner builds one `FoldContext` per run and hands it to every fold, to the inner
cross-validation of a Youden threshold and to the final model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from core.training.config import TrainConfig
from core.training.data import TrainingData
from core.training.folds import Fold, fold_seed
from core.training.loop import CheckpointStore, Emit, FoldTrainer
from core.training.runtime import CancelToken, Progress, Runtime

ModelFactory = Callable[[int], nn.Module]  # fold seed -> fresh model


@dataclass(frozen=True)
class FoldContext:
    data: TrainingData
    cfg: TrainConfig
    runtime: Runtime
    model_factory: ModelFactory
    emit: Emit
    cancel: CancelToken
    progress: Progress

    def replace(self, **changes: Any) -> FoldContext:
        return dataclasses.replace(self, **changes)

    def trainer(
        self,
        fold: Fold,
        *,
        fold_id: str | None = None,
        checkpoints: CheckpointStore | None = None,
    ) -> FoldTrainer:
        """A FoldTrainer for `fold` with a fresh model from the fold's own seed."""
        model = self.model_factory(fold_seed(self.cfg.seed, fold.repeat, fold.fold))
        return FoldTrainer(
            self.data,
            fold,
            self.cfg,
            self.runtime,
            model,
            emit=self.emit,
            cancel=self.cancel,
            checkpoints=checkpoints,
            progress=self.progress,
            fold_id=fold_id,
        )
