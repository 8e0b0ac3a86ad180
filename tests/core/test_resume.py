"""A run cancelled mid-epoch and resumed ends exactly like an uninterrupted one (CPU)."""

from __future__ import annotations

import json

import pytest
import torch

from core.errors import Cancelled
from core.runs.events import read_events
from core.runs.folder import RunFolder, load_torch
from core.runs.runner import run_cv
from core.training.config import TrainConfig
from core.training.folds import make_folds
from core.training.loop import FoldTrainer
from core.training.runtime import CancelToken, resolve_runtime
from tests.core.test_training_run import demo_subset, random_model

CFG = TrainConfig(
    init="random",
    resolution=32,
    strategy="probe+progressive",
    probe_epochs=2,
    epochs=3,
    batch_size=4,
    cv_folds=2,
    cv_repeats=1,
    device="cpu",
    precision="fp32",
    eval_every_epoch=True,
    checkpoint_every_s=0,  # after every epoch, so the interrupt below has one to resume
)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return demo_subset(tmp_path_factory.mktemp("resume"), 6, 32)


def _predictions(run: RunFolder) -> str:
    return (run.path / "predictions.csv").read_text()


def test_resume_equals_uninterrupted_run(tmp_path, data):
    torch.set_num_threads(1)
    full = RunFolder.create(tmp_path / "full", {"train": CFG.to_json()}, {})
    expected = run_cv(full, data, CFG, random_model)

    part = RunFolder.create(tmp_path / "part", {"train": CFG.to_json()}, {})
    cancel = CancelToken()

    def stop_in_second_fold(event):
        # first batch of the second fine-tuning epoch of fold 2 -> stop after it
        if event["type"] == "epoch_started" and (event["fold_id"], event["epoch"]) == ("r0-f1", 3):
            cancel.cancel("test interrupt")

    with pytest.raises(Cancelled):
        run_cv(part, data, CFG, random_model, cancel=cancel, on_event=stop_in_second_fold)
    assert json.loads((part.path / "state.json").read_text())["status"] == "cancelled"
    assert list(read_events(part.path / "events.jsonl"))[-1]["type"] == "run_cancelled"
    assert part.fold("r0-f0").finished and not part.fold("r0-f1").finished
    checkpoint = part.fold("r0-f1").load()  # loads with weights_only=True
    assert checkpoint["epoch"] == 2  # the last finished epoch
    assert not (part.path / "summary.json").exists()

    resumed = run_cv(RunFolder.open(part.path), data, CFG, random_model)
    assert resumed == expected
    assert _predictions(part) == _predictions(full)
    for fold_id in ("r0-f0", "r0-f1"):
        a = load_torch(full.fold(fold_id).path / "model.pt")
        b = load_torch(part.fold(fold_id).path / "model.pt")
        assert all(torch.equal(a[k], b[k]) for k in a), fold_id
        assert full.fold(fold_id).read_predictions() == part.fold(fold_id).read_predictions()
    history = part.fold("r0-f1").read()["history"]
    assert [h["epoch"] for h in history] == list(range(5))
    assert json.loads((part.path / "state.json").read_text())["status"] == "finished"


def test_same_seed_same_result_other_seed_other_folds(tmp_path, data):
    torch.set_num_threads(1)
    cfg = CFG.replace(strategy="probe", probe_epochs=2)
    a = run_cv(RunFolder.create(tmp_path / "a", {}, {}), data, cfg, random_model)
    b = run_cv(RunFolder.create(tmp_path / "b", {}, {}), data, cfg, random_model)
    assert a == b
    c_run = RunFolder.create(tmp_path / "c", {}, {})
    run_cv(c_run, data, cfg.replace(seed=cfg.seed + 1), random_model)
    folds_a = RunFolder(tmp_path / "a").fold("r0-f0").read()["test_patients"]
    assert folds_a != c_run.fold("r0-f0").read()["test_patients"]


class _RecordingStore:
    def __init__(self):
        self.epochs: list[int] = []

    def load(self):
        return None

    def save(self, state):
        self.epochs.append(state["epoch"])


# epochs 0-1 cached probe, 2-4 fine-tuning: the first probe epoch and the fold's last
# epoch are never checkpointed; otherwise the interval decides
@pytest.mark.parametrize("every_s,expected", [(0, [1, 2, 3]), (3600, [])])
def test_checkpoints_follow_the_interval(data, every_s, expected):
    torch.set_num_threads(1)
    cfg = CFG.replace(checkpoint_every_s=every_s)
    fold = make_folds(data.labels, 2, 1, cfg.seed, "stratified")[0]
    store = _RecordingStore()
    trainer = FoldTrainer(
        data, fold, cfg, resolve_runtime(cfg), random_model(1),
        emit=lambda *a, **k: None, checkpoints=store,
    )  # fmt: skip
    trainer.run()
    assert store.epochs == expected
