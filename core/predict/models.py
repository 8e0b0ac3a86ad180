"""Which model(s) a prediction uses, and the preprocessing and threshold that go with them.

- an exported model folder (core.models.export): that model, its card's preprocessing
  and threshold;
- a run folder with a final model: the final model;
- a run folder without one: the ensemble of its finished folds' models (mean
  probability), each rebuilt from its state_dict (loaded with weights_only=True).

The run folder is read through core.runs.folder.RunFolder (docs/run-folder.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from core.cohort.crops import CropTable
from core.cohort.preprocess import PreprocessConfig
from core.errors import InputError
from core.runs.folder import RunFolder


@dataclass
class Predictor:
    models: list[tuple[str, torch.nn.Module]]  # (name, eval-mode model on CPU)
    preprocess: PreprocessConfig
    threshold: float
    kind: str  # "export", "final" or "ensemble"
    source: Path
    test_images: str = "first"  # how the run scored a patient with several images
    outcome: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, Any] = field(default_factory=dict)  # training table's id/image columns
    crops: CropTable = field(default_factory=CropTable)  # boxes the run trained with

    @property
    def description(self) -> str:
        if self.kind == "ensemble":
            return f"ensemble of {len(self.models)} fold models of {self.source.name}"
        if self.kind == "final":
            return f"final model of {self.source.name}"
        return f"exported model {self.source.name}"

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, 1, R, R] in [-1024, 1024] -> [B] mean probability over the models."""
        probs = [torch.sigmoid(m(x).float()) for _, m in self.models]
        return torch.stack(probs).mean(0)


def load_predictor(path: str | Path) -> Predictor:
    from core.models.export import is_model_dir, load_model_dir

    path = Path(path)
    if not path.exists():
        raise InputError("model or run folder not found", file=path)
    if is_model_dir(path):
        model, card = load_model_dir(path)
        return _from_card(model, card, "export", path)
    run = RunFolder(path)
    if not run.has_config:
        raise InputError(
            "not a run folder (no config.json) nor an exported model folder "
            "(no model.json + model.pt)",
            file=path,
        )
    if run.has_final_model():
        model, card = load_model_dir(run.final_model_dir)
        final = _from_card(model, card, "final", path)
        final.crops = run.crops()  # trained on the run's crops like its fold models
        return final
    config = run.config()
    ids = [f.fold_id for f in run.finished_folds() if f.folder.has_model]
    if not ids:
        raise InputError("the run has no finished fold model and no final model", file=path)
    models = [(fid, run.fold_model(fid, config)) for fid in ids]
    return Predictor(
        models=models,
        preprocess=run.preprocess(config),
        threshold=run.threshold_for_new_patients(config),
        kind="ensemble",
        source=path,
        test_images=config.get("train", {}).get("test_images", "first"),
        outcome=run.cohort_source(config).get("outcome") or {},
        columns=run.recorded_columns(config),
        crops=run.crops(config),
    )


def _from_card(model, card: dict[str, Any], kind: str, source: Path) -> Predictor:
    train = (card.get("training") or {}).get("config") or {}
    return Predictor(
        models=[(kind, model)],
        preprocess=PreprocessConfig.from_json(card.get("preprocessing") or {}),
        threshold=float(card.get("threshold", 0.5)),
        kind=kind,
        source=source,
        test_images=train.get("test_images", "first"),
        outcome=card.get("outcome") or {},
        columns=card.get("columns") or {},
    )
