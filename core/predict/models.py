"""Which model(s) a prediction uses, and the preprocessing and threshold that go with them.

- an exported model folder (core.models.export): that model, its card's preprocessing
  and threshold;
- a run folder with a final model (RUN_DIR/final_model/): the final model;
- a run folder without one: the ensemble of its fold models (mean probability), each
  rebuilt from folds/*/model.pt (state_dict, loaded with weights_only=True).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from core.cohort.preprocess import PreprocessConfig
from core.errors import InputError


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


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {path.name}: {exc}", file=path) from None


def run_preprocess(config: dict[str, Any]) -> PreprocessConfig:
    pre = config.get("preprocess") or {"resolution": config.get("train", {}).get("resolution")}
    return PreprocessConfig.from_json(pre)


def load_fold_model(run_dir: str | Path, fold_id: str, config: dict | None = None):
    """One fold's final model (eval mode, CPU), rebuilt from its state_dict."""
    from core.models.registry import build_model

    run_dir = Path(run_dir)
    config = config or _read_json(run_dir / "config.json")
    train = config.get("train", {})
    path = run_dir / "folds" / fold_id / "model.pt"
    if not path.is_file():
        raise InputError(f"fold {fold_id} has no model.pt (fold not finished?)", file=path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickled objects are refused as well as damaged files
        raise InputError(f"cannot load the fold model ({type(exc).__name__})", file=path) from None
    model = build_model(train.get("init", "xrv"), dropout=float(train.get("dropout", 0.1)))
    model.load_state_dict(state, strict=True)
    return model.eval()


def fold_ids(run_dir: str | Path) -> list[str]:
    """Finished folds of a run, in order."""
    out = []
    for fold_json in sorted(Path(run_dir, "folds").glob("*/fold.json")):
        info = _read_json(fold_json)
        if info.get("finished") and (fold_json.parent / "model.pt").is_file():
            out.append(fold_json.parent.name)
    return out


def run_threshold(run_dir: Path, config: dict[str, Any]) -> float:
    """The threshold a run recommends for new patients (summary.json), else its setting."""
    summary_path = run_dir / "summary.json"
    if summary_path.is_file():
        t = (_read_json(summary_path).get("threshold") or {}).get("for_new_patients")
        if t is not None:
            return float(t)
    return float(config.get("train", {}).get("threshold", 0.5))


def load_predictor(path: str | Path) -> Predictor:
    from core.models.export import is_model_dir, load_model_dir
    from core.runs.final_model import final_model_dir

    path = Path(path)
    if not path.exists():
        raise InputError("model or run folder not found", file=path)
    if is_model_dir(path):
        model, card = load_model_dir(path)
        return _from_card(model, card, "export", path)
    if not (path / "config.json").is_file():
        raise InputError(
            "not a run folder (no config.json) nor an exported model folder "
            "(no model.json + model.pt)",
            file=path,
        )
    config = _read_json(path / "config.json")
    if is_model_dir(final_model_dir(path)):
        model, card = load_model_dir(final_model_dir(path))
        return _from_card(model, card, "final", path)
    ids = fold_ids(path)
    if not ids:
        raise InputError("the run has no finished fold model and no final model", file=path)
    models = [(fid, load_fold_model(path, fid, config)) for fid in ids]
    train = config.get("train", {})
    return Predictor(
        models=models,
        preprocess=run_preprocess(config),
        threshold=run_threshold(path, config),
        kind="ensemble",
        source=path,
        test_images=train.get("test_images", "first"),
        outcome=config.get("cohort_source", {}).get("outcome") or {},
        columns=recorded_columns(config),
    )


def recorded_columns(config: dict[str, Any]) -> dict[str, Any]:
    """{patient_id, image, image_pattern} the run's table was read with (user choices)."""
    source = config.get("cohort_source") or {}
    mapping = source.get("mapping") or {}
    out = {"patient_id": mapping.get("patient_id"), "image": mapping.get("image")}
    out["image_pattern"] = source.get("image_pattern")
    return out if any(out.values()) else {}


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
