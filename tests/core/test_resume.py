"""A run stopped (cancelled or killed) at any moment and resumed ends exactly like an
uninterrupted one (CPU), final model included; a damaged checkpoint restarts its fold."""

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


class Killed(BaseException):
    """Stands for SIGKILL: the process ends mid-step, without a graceful stop."""


# (what, how, event type, fold id, epoch): four moments, two stopped like Ctrl-C or
# SIGTERM (cancel: after the current batch) and two killed outright; epochs 0-1 are the
# cached probe, 2-4 fine-tuning
MOMENTS = [
    ("probe of the first fold", "cancel", "epoch_started", "r0-f0", 1),
    ("between two folds", "kill", "fold_finished", "r0-f0", None),
    ("fine-tuning of the second fold", "cancel", "epoch_started", "r0-f1", 3),
    ("the final model", "kill", "epoch_started", "final", 3),
]


def _interrupter(what, how, type_, fold_id, epoch, cancel):
    def interrupt(event):
        if (
            event.type == type_
            and getattr(event, "fold_id", None) == fold_id
            and (epoch is None or event.epoch == epoch)
        ):
            if how == "kill":
                raise Killed(what)
            cancel.cancel("test interrupt")

    return interrupt


def _state(path):
    return json.loads((path / "state.json").read_text())["status"]


def _final_state(run: RunFolder):
    from core.models.export import load_model_dir

    model, card = load_model_dir(run.path / "final_model")
    history = [{k: v for k, v in h.items() if k != "seconds"} for h in card["training"]["history"]]
    return model.state_dict(), history  # the same epochs, not the same wall-clock times


@pytest.mark.slow
def test_interrupted_four_times_then_resumed_equals_uninterrupted_run(tmp_path, data):
    """One run stopped at four moments (each resumed) ends byte for byte like a run never
    interrupted: summary, pooled and fold predictions, fold models, final model."""
    torch.set_num_threads(1)
    full = RunFolder.create(tmp_path / "full", {"train": CFG.to_json()}, {})
    expected = run_cv(full, data, CFG, random_model, final_model=True)

    part = RunFolder.create(tmp_path / "part", {"train": CFG.to_json()}, {})
    for what, how, type_, fold_id, epoch in MOMENTS:
        cancel = CancelToken()
        interrupt = _interrupter(what, how, type_, fold_id, epoch, cancel)
        with pytest.raises(Cancelled if how == "cancel" else Killed):
            run_cv(RunFolder.open(part.path), data, CFG, random_model, cancel=cancel,
                   on_event=interrupt, final_model=True)  # fmt: skip
        assert _state(part.path) == ("cancelled" if how == "cancel" else "failed"), what
        last = list(read_events(part.path / "events.jsonl"))[-1].type
        assert last == ("run_cancelled" if how == "cancel" else "run_failed"), what
        if what.startswith("fine-tuning"):
            assert part.fold("r0-f0").finished and not part.fold("r0-f1").finished
            assert part.fold("r0-f1").load()["epoch"] == 2  # weights_only; last finished epoch
            assert not (part.path / "summary.json").exists()
        if how == "kill":  # a kill can leave a temp file of a write it interrupted
            (part.path / "folds" / ".fold.json.1234.tmp").write_text("{")

    resumed = run_cv(RunFolder.open(part.path), data, CFG, random_model, final_model=True)
    assert resumed == expected
    assert _predictions(part) == _predictions(full)
    assert not list(part.path.rglob("*.tmp"))
    for fold_id in ("r0-f0", "r0-f1"):
        a = load_torch(full.fold(fold_id).path / "model.pt")
        b = load_torch(part.fold(fold_id).path / "model.pt")
        assert all(torch.equal(a[k], b[k]) for k in a), fold_id
        assert full.fold(fold_id).read_predictions() == part.fold(fold_id).read_predictions()
    (a, history_a), (b, history_b) = _final_state(full), _final_state(part)
    assert all(torch.equal(a[k], b[k]) for k in a) and history_a == history_b
    history = part.fold("r0-f1").read()["history"]
    assert [h["epoch"] for h in history] == list(range(5))
    assert _state(part.path) == "finished"


@pytest.mark.slow
def test_damaged_checkpoint_restarts_its_fold_with_the_same_result(tmp_path, data):
    """A checkpoint damaged on disk stops the resume with a clear error (stored without
    torch's advice); set aside (`bpd resume --restart-fold`) the fold trains again from
    its start and the run ends like an uninterrupted one."""
    from core.errors import CheckpointError

    torch.set_num_threads(1)
    cfg = CFG.replace(strategy="probe", probe_epochs=3)  # cheaper: head only
    full = RunFolder.create(tmp_path / "full", {"train": cfg.to_json()}, {})
    expected = run_cv(full, data, cfg, random_model)
    part = RunFolder.create(tmp_path / "part", {"train": cfg.to_json()}, {})
    cancel = CancelToken()

    def stop(event):
        if event.type == "epoch_started" and (event.fold_id, event.epoch) == ("r0-f1", 2):
            cancel.cancel("test interrupt")

    with pytest.raises(Cancelled):
        run_cv(part, data, cfg, random_model, cancel=cancel, on_event=stop)
    checkpoint = part.fold("r0-f1").path / "checkpoint.pt"
    torch.save({"epoch": 1, "model": random_model(0).state_dict()}, checkpoint)
    checkpoint.write_bytes(checkpoint.read_bytes()[:-200])  # cut short (a full disk, a copy)
    with pytest.raises(CheckpointError, match="--restart-fold"):
        run_cv(RunFolder.open(part.path), data, cfg, random_model)
    state = json.loads((part.path / "state.json").read_text())
    assert state["status"] == "failed" and "weights_only" not in state["error"]
    assert "weights_only" not in (part.path / "events.jsonl").read_text()
    assert RunFolder(part.path).set_aside_damaged_checkpoints() == [
        checkpoint.with_name("checkpoint.pt.damaged")
    ]
    assert run_cv(RunFolder.open(part.path), data, cfg, random_model) == expected
    assert _predictions(part) == _predictions(full)


@pytest.mark.slow
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
@pytest.mark.slow
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
