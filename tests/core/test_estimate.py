"""One work model: the runner's progress total, `bpd bench`'s work units and the app's
duration estimate all come from core.training.estimate (torch-free)."""

import subprocess
import sys

import numpy as np
import pytest

from core.training.config import preset
from core.training.estimate import (
    BACKWARD_COST,
    estimate_seconds,
    fold_work,
    run_work,
    work_units_per_s,
)


def test_fold_work_counts_forward_and_backward_passes():
    cfg = preset("paper").replace(strategy="progressive", epochs=10, batch_size=8,
                                  eval_every_epoch=False)  # fmt: skip
    # 160 training images = 20 full batches; unfreezing at epoch 1: one head-only epoch
    per_epoch = 160 * (1 + BACKWARD_COST)
    assert fold_work(cfg, 160, 20) == 160 * 1.0 + 9 * per_epoch + 20  # last epoch scored
    scored = cfg.replace(eval_every_epoch=True)
    assert fold_work(scored, 160, 20) == fold_work(cfg, 160, 20) + 9 * 20


def test_a_cached_probe_costs_one_feature_pass():
    cfg = preset("cpu-fast")
    assert cfg.uses_feature_cache
    no_probe = cfg.replace(strategy="progressive")
    # 40 probe epochs on cached features: BN pass over training images + one pass over all
    assert fold_work(cfg, 100, 25) == pytest.approx(fold_work(no_probe, 100, 25) + 2 * 100 + 25)


def test_run_work_scales_with_folds_repeats_and_the_final_model():
    cfg = preset("cpu-fast")
    one = run_work(cfg, n_patients=163, n_images=250)
    assert one == pytest.approx(5 * fold_work(cfg, 200, 33))  # typical fold: 4/5 and 1/5
    six = cfg.replace(cv_repeats=6)
    assert run_work(six, 163, 250) == pytest.approx(6 * one)
    final = run_work(cfg, 163, 250, final_model=True) - one
    assert final == pytest.approx(fold_work(cfg.replace(eval_every_epoch=False), 250, 0))
    youden = run_work(cfg.replace(threshold_method="youden"), 163, 250)
    assert 2.0 < youden / one < 3.5  # about 3x, as the docs say


def test_duration_from_bench_speed():
    cfg = preset("paper")
    units = run_work(cfg, 163, 250)
    assert work_units_per_s(10.0) == 30.0  # a trained image is a forward and a backward
    assert estimate_seconds(cfg, 163, 250, 30.0) == pytest.approx(units / 30.0)


def test_the_runner_total_matches_the_estimate_for_the_same_folds():
    """The runner counts each fold's exact images; the estimate the typical fold."""
    from core.training.folds import make_folds

    cfg = preset("cpu-fast")
    labels = np.array([1] * 60 + [0] * 103)
    folds = make_folds(labels, cfg.cv_folds, cfg.cv_repeats, cfg.seed, cfg.cv_scheme)
    exact = sum(fold_work(cfg, len(f.train), len(f.test)) for f in folds)  # one image each
    assert run_work(cfg, 163, 163) == pytest.approx(exact, rel=0.02)


def test_the_estimate_matches_a_real_runs_progress_total():
    """A real 2-fold run of the demo cohort (163 patients, 245 images): the runner's
    progress total (exact fold sizes) and the app's estimate (typical fold) agree."""
    from pathlib import Path

    from core.runs.events import read_events_from
    from core.training.config import TrainConfig

    stream = Path(__file__).parents[1] / "data" / "events" / "demo-2folds-v1.jsonl"
    events, _ = read_events_from(stream, 0)
    cfg = TrainConfig.from_json(events[0].config)
    runner_total = [e.total for e in events if e.type == "progress"][-1]
    assert run_work(cfg, 163, 245) == pytest.approx(runner_total, rel=0.01)


def test_the_estimate_never_imports_torch():
    code = "import sys, core.training.estimate; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_estimate_with_workers_counts_rounds_of_folds():
    cfg = preset("cpu-fast")  # 5 folds x 1
    one = estimate_seconds(cfg, 163, 250, 30.0)
    # 2 folds at once, each at one worker's measured rate: 3 rounds of a typical fold
    assert estimate_seconds(cfg, 163, 250, 30.0, workers=2) == pytest.approx(one * 3 / 5)
    assert estimate_seconds(cfg, 163, 250, 30.0, workers=5) == pytest.approx(one / 5)
    final = estimate_seconds(cfg, 163, 250, 30.0, final_model=True) - one
    both = estimate_seconds(cfg, 163, 250, 30.0, final_model=True, workers=5)
    assert both == pytest.approx(one / 5 + final)  # the final model trains alone
