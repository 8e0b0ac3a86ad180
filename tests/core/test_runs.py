"""Run folders: layout, state, atomic writes that survive a kill, and the run summary."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from core.errors import RunError
from core.runs.folder import RunFolder, load_torch
from core.runs.summary import pooled_predictions, run_summary
from core.scoring.metrics import auroc


def test_create_open_and_state(tmp_path):
    run = RunFolder.create(tmp_path / "r", {"train": {"seed": 1}}, {"summary": {"n_patients": 3}})
    assert json.loads((run.path / "config.json").read_text()) == {"train": {"seed": 1}}
    assert (run.path / "cohort.json").exists() and (run.path / "folds").is_dir()
    state = run.state()
    assert state["status"] == "running" and state["pid"] == os.getpid()
    run.write_state("failed", error="boom")
    assert RunFolder.open(run.path).state()["error"] == "boom"
    with pytest.raises(RunError, match="not empty"):
        RunFolder.create(run.path, {}, {})
    with pytest.raises(RunError, match="not a run folder"):
        RunFolder.open(tmp_path)
    with pytest.raises(ValueError):
        run.write_state("paused")


def test_checkpoint_is_weights_only_loadable(tmp_path):
    fold = RunFolder.create(tmp_path / "r", {}, {}).fold("r0-f0")
    g = torch.Generator().manual_seed(3)
    state = {"epoch": 2, "model": {"w": torch.ones(3)}, "rng_generator": g.get_state(),
             "history": [{"epoch": 0, "test_auroc": None, "lrs": {"head": 1e-3}}]}  # fmt: skip
    fold.save(state)
    back = fold.load()
    assert back["epoch"] == 2 and torch.equal(back["model"]["w"], torch.ones(3))
    assert back["history"] == state["history"]
    assert torch.equal(back["rng_generator"], g.get_state())


WRITER = textwrap.dedent(
    """
    import sys, torch
    from core.runs.folder import FoldFolder
    from pathlib import Path
    fold = FoldFolder(Path(sys.argv[1]))
    big = {"model": {"w": torch.randn(12_000_000)}}
    i = 0
    while True:
        big["epoch"] = i
        fold.save(big)
        print(i, flush=True)
        i += 1
    """
)


def test_kill_mid_write_leaves_no_partial_file(tmp_path):
    folder = tmp_path / "run" / "folds" / "r0-f0"
    folder.mkdir(parents=True)
    (tmp_path / "run" / "config.json").write_text("{}")
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(folder)],
        stdout=subprocess.PIPE,
        cwd=os.getcwd(),
        env={**os.environ, "PYTHONPATH": os.getcwd(), "OMP_NUM_THREADS": "1"},
    )
    try:
        assert proc.stdout.readline()  # one checkpoint complete
        time.sleep(0.15)  # most likely inside the next 48 MB write
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    ckpt = folder / "checkpoint.pt"
    loaded = load_torch(ckpt)  # the last complete one, never half a file
    assert loaded["model"]["w"].shape == (12_000_000,)
    run = RunFolder.open(tmp_path / "run")  # resuming clears the killed write's temp file
    assert not list(run.path.rglob("*.tmp"))
    assert load_torch(ckpt)["epoch"] == loaded["epoch"]


def test_summary_pools_repeats_per_patient():
    rows = []
    probs = {"a": (0.9, 0.7), "b": (0.2, 0.6), "c": (0.8, 0.4), "d": (0.1, 0.3)}
    labels = {"a": 1, "b": 0, "c": 1, "d": 0}
    for r in range(2):
        for pid, p in probs.items():
            rows.append({"patient_id": pid, "label": labels[pid], "prob": p[r], "repeat": r})
    pooled = pooled_predictions(rows, 2)
    assert [row["prob"] for row in pooled] == pytest.approx([0.8, 0.4, 0.6, 0.2])
    assert pooled[0]["prob_r0"] == 0.9 and pooled[0]["n_repeats"] == 2
    folds = [
        {"repeat": 0, "fold": 0, "metrics": {"auroc": 1.0, "f1": 0.5}},
        {"repeat": 0, "fold": 1, "metrics": {"auroc": 0.5, "f1": float("nan")}},
        {"repeat": 1, "fold": 0, "metrics": {"auroc": 0.75, "f1": 1.0}},
    ]
    s = run_summary(folds, pooled, 4, 2)
    assert s["repeat_auroc"] == [0.75, 0.75]
    assert s["auroc"]["mean"] == pytest.approx(0.75) and s["auroc"]["n"] == 3
    assert s["f1"]["n"] == 2  # the undefined fold is left out, not counted as 0
    expected = auroc(np.array([1, 0, 1, 0]), np.array([0.8, 0.4, 0.6, 0.2]))
    assert s["pooled_auroc"] == pytest.approx(expected)
    assert s["n_patients"] == 4 and s["n_positive"] == 2 and s["n_folds"] == 3
    json.dumps(s, allow_nan=False)  # no NaN in summary.json
