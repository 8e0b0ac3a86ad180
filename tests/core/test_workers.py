"""Folds in worker processes (`--workers N`): the same results, one event stream, and a
cancel that leaves a resumable run; plus the rule that picks N."""

from __future__ import annotations

import threading

import pytest
import torch

from core.errors import Cancelled
from core.runs.events import read_events
from core.runs.folder import RunFolder
from core.runs.runner import run_cv
from core.runs.workers import InitModelFactory
from core.training.config import TrainConfig
from core.training.parallel import default_workers, fold_peak_mb, threads_per_worker
from core.training.runtime import CancelToken
from tests.core.test_training_run import demo_subset


def test_default_workers_rule():
    cfg = TrainConfig(resolution=128, batch_size=16)
    many = 10**6
    assert default_workers(cfg, 5, cores=2, memory_mb=many) == 1  # one per 2 cores
    assert default_workers(cfg, 5, cores=8, memory_mb=many) == 4
    assert default_workers(cfg, 3, cores=16, memory_mb=many) == 3  # no more than folds
    assert default_workers(cfg, 5, cores=8, memory_mb=many, device_type="cuda") == 1
    # memory: 80 % of what is available over one fold's peak
    peak = fold_peak_mb(cfg, data_mb=100)
    assert default_workers(cfg, 5, cores=16, memory_mb=2.5 * peak / 0.8, data_mb=100) == 2
    assert default_workers(cfg, 5, cores=16, memory_mb=1.0, data_mb=100) == 1
    assert threads_per_worker(2, cores=8) == 4
    assert threads_per_worker(3, cores=2) == 1
    assert threads_per_worker(2, cores=8, asked=1) == 1


def _tiny_cfg() -> TrainConfig:
    return TrainConfig(
        init="random",
        resolution=32,
        strategy="probe+progressive",
        probe_epochs=1,
        epochs=1,
        batch_size=8,
        cv_folds=2,
        cv_repeats=1,
        eval_every_epoch=False,
        device="cpu",
        precision="fp32",
        num_threads=1,  # both runs sum in the same order: bit-identical results
    )


def _run(path, data, cfg, workers, cancel=None, on_event=None):
    run = RunFolder.create(path, {"train": cfg.to_json()}, {"summary": {}})
    return run, run_cv(
        run, data, cfg, InitModelFactory("random", cfg.dropout), workers=workers,
        cancel=cancel, on_event=on_event,
    )  # fmt: skip


@pytest.mark.slow
def test_two_workers_give_the_results_and_events_of_one(tmp_path):
    torch.set_num_threads(1)
    data = demo_subset(tmp_path, 8, 32)
    cfg = _tiny_cfg()
    one, s1 = _run(tmp_path / "one", data, cfg, workers=1)
    two, s2 = _run(tmp_path / "two", data, cfg, workers=2)
    for f in one.finished_folds():
        a = one.fold(f.fold_id).read_predictions()
        b = two.fold(f.fold_id).read_predictions()
        assert a == b and len(a) > 0  # the same patients, probabilities to the last digit
        sa, sb = one.fold(f.fold_id).model_state(), two.fold(f.fold_id).model_state()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert one.predictions() == two.predictions()
    assert s1["auroc"] == s2["auroc"]

    events = list(read_events(two.path / "events.jsonl"))
    assert [e.seq for e in events] == list(range(len(events)))  # one writer
    started = events[0]
    assert started.type == "run_started" and started.runtime["workers"] == 2
    assert started.runtime["threads"] == 1
    types = [e.type for e in events]
    assert types.count("fold_started") == 2 and types.count("fold_finished") == 2
    assert types[-1] == "run_finished"
    done = [e.done for e in events if e.type == "progress"]
    assert done == sorted(done) and done[-1] == pytest.approx(events[-2].total)


@pytest.mark.slow
def test_cancel_stops_every_worker_and_the_run_resumes(tmp_path):
    torch.set_num_threads(1)
    data = demo_subset(tmp_path, 8, 32)
    # enough epochs that both workers are still training when the cancel arrives on an idle
    # machine (batch events are throttled, so a cancel waiting for one could come too late)
    cfg = _tiny_cfg().replace(epochs=12)
    cancel = CancelToken()
    started: set[str] = set()

    def on_event(event):
        if event.type == "fold_started":
            started.add(event.fold_id)
        in_training = event.type in ("epoch_started", "batch", "epoch_finished")
        if len(started) == 2 and in_training and not cancel.cancelled:
            threading.Timer(0.0, cancel.cancel, ("stopped by the test",)).start()

    with pytest.raises(Cancelled):
        _run(tmp_path / "run", data, cfg, workers=2, cancel=cancel, on_event=on_event)
    run = RunFolder.open(tmp_path / "run")
    assert run.state()["status"] == "cancelled"
    assert len(started) == 2  # both folds were running at once
    summary = run_cv(run, data, cfg, InitModelFactory("random", cfg.dropout), workers=2)
    assert run.state()["status"] == "finished" and summary["n_folds"] == 2
    events = list(read_events(run.path / "events.jsonl"))
    assert [e.seq for e in events] == list(range(len(events)))


def test_workers_option_is_recorded_and_checked():
    from core.errors import InputError
    from core.runs.run_config import RunOptions

    assert RunOptions.from_json({"workers": 2}).to_json()["workers"] == 2
    assert RunOptions.from_json({}).workers == 0  # a config.json from before: automatic
    with pytest.raises(InputError):
        RunOptions(workers=-1)
    with pytest.raises(InputError):
        RunOptions.from_json({"workers": "two"})


@pytest.mark.parametrize("command", [["train", "t.csv"], ["demo"], ["resume", "run"]])
def test_workers_flag_refuses_a_negative_count(command, capsys):
    from core.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main([*command, "--workers", "-1"])
    assert exc.value.code == 2 and "--workers" in capsys.readouterr().err
