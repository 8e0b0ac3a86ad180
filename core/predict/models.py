"""Which model(s) a prediction uses, and the preprocessing and threshold that go with them.

- an exported model folder (core.models.export): that model, its card's preprocessing
  and threshold;
- a run folder with a final model: the final model;
- a run folder without one: the ensemble of its finished folds' models (mean
  probability), each rebuilt from its state_dict (loaded with weights_only=True).

Fold models load lazily (FoldModels): for one image each is loaded, used and freed
before the next (a fifth of the memory); its weights are mmap'd from model.pt and its
skeleton built without the random initialisation the weights replace, so a model loads
in a fraction of a second. For several images the models stay loaded (keep_loaded).

The run folder is read through core.runs.folder.RunFolder (docs/run-folder.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from core.cohort.crop_policy import crop_policy
from core.cohort.crops import CropTable
from core.cohort.preprocess import PreprocessConfig
from core.errors import InputError
from core.runs.folder import RunFolder


class FoldModels(Sequence):
    """(name, eval-mode model on CPU) pairs, each model loaded when it is reached.
    Unless `keep_loaded()` was called, a model is dropped when the next one is loaded,
    so iterating holds one model at a time."""

    def __init__(self, names: list[str], load: Callable[[str], torch.nn.Module]):
        self.names, self._load = list(names), load
        self._keep = False
        self._loaded: dict[str, torch.nn.Module] = {}

    def keep_loaded(self) -> None:
        self._keep = True

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        name = self.names[i]
        model = self._loaded.get(name)
        if model is None:
            if not self._keep:
                self._loaded.clear()  # free the previous one first
            model = self._loaded[name] = self._load(name)
        return name, model

    def __iter__(self) -> Iterator[tuple[str, torch.nn.Module]]:
        for i in range(len(self)):
            yield self[i]


@dataclass
class Predictor:
    models: Sequence[tuple[str, torch.nn.Module]]  # (name, eval-mode model on CPU)
    preprocess: PreprocessConfig
    threshold: float
    kind: str  # "export", "final" or "ensemble"
    source: Path
    test_images: str = "first"  # how the run scored a patient with several images
    outcome: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, Any] = field(default_factory=dict)  # training table's id/image columns
    crops: CropTable = field(default_factory=CropTable)  # boxes the run trained with
    # whether and how its training images were cut (core.cohort.crop_policy; {}: an
    # exported model whose card predates the record)
    crop_policy: dict[str, Any] = field(default_factory=dict)

    @property
    def description(self) -> str:
        if self.kind == "ensemble":
            return f"ensemble of {len(self.models)} fold models of {self.source.name}"
        if self.kind == "final":
            return f"final model of {self.source.name}"
        return f"exported model {self.source.name}"

    def keep_models_loaded(self) -> None:
        """Several images to score: load each fold model once, not once per image."""
        if isinstance(self.models, FoldModels):
            self.models.keep_loaded()

    @torch.no_grad()  # not inference_mode: a model loaded lazily here must stay usable for Grad-CAM
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
        final.crop_policy = final.crop_policy or crop_policy(final.crops)
        return final
    config = run.config()
    ids = [f.fold_id for f in run.finished_folds() if f.folder.has_model]
    if not ids:
        raise InputError("the run has no finished fold model and no final model", file=path)
    train = config.get("train", {})
    init, dropout = train.get("init", "xrv"), float(train.get("dropout", 0.1))
    models = FoldModels(ids, lambda fid: _fold_model(run, fid, init, dropout))
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
        crop_policy=crop_policy(run.crops(config)),
    )


def _fold_model(run: RunFolder, fold_id: str, init: str, dropout: float) -> torch.nn.Module:
    """A fold's model as RunFolder.fold_model builds it, faster: weights mmap'd from the
    file and assigned to a skeleton built without random initialisation."""
    from core.models.registry import build_model

    state = run.fold(fold_id).model_state(mmap=True)
    with _no_weight_init():
        model = build_model(init, dropout=dropout)
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise InputError(f"fold {fold_id}: the model does not fit its run's architecture "
                         f"({str(exc).splitlines()[0]})", file=run.path) from None  # fmt: skip
    # runs saved before core.models.layout.plain_state may hold channels_last weights
    return model.to(memory_format=torch.contiguous_format).eval()


_INIT_FUNCTIONS = (
    "uniform_", "normal_", "constant_", "ones_", "zeros_", "xavier_uniform_",
    "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "trunc_normal_",
)  # fmt: skip


@contextlib.contextmanager
def _no_weight_init():
    """torch.nn.init's functions do nothing inside: a model whose every parameter and
    buffer is about to be replaced by a state_dict skips its random initialisation
    (seconds for a ResNet-50 on a small CPU). Not thread-safe; for loading only."""
    saved = {name: getattr(torch.nn.init, name) for name in _INIT_FUNCTIONS}
    try:
        for name in _INIT_FUNCTIONS:
            setattr(torch.nn.init, name, lambda tensor, *a, **k: tensor)
        yield
    finally:
        for name, fn in saved.items():
            setattr(torch.nn.init, name, fn)


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
        crop_policy=card.get("crops") or {},
    )
