"""A tiny real training run on real radiographs (the shipped demo cohort) learns, and
writes the run folder the contracts describe."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core import paths
from core.cohort.cache import ImageCache
from core.cohort.loader import load_cohort
from core.cohort.prepare import prepare_images
from core.cohort.preprocess import PreprocessConfig
from core.models.registry import create_model
from core.runs.folder import RunFolder, load_torch
from core.runs.runner import run_cv
from core.training.config import TrainConfig
from core.training.data import TrainingData


def demo_subset(tmp_path: Path, n_per_class: int, resolution: int) -> TrainingData:
    """The first n patients of each class of the demo cohort, decoded by the real
    cohort pipeline into a private cache."""
    table = paths.demo_cohort_table()
    with open(table, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    chosen: dict[str, list[str]] = {"NORMAL": [], "PNEUMONIA": []}
    for row in rows:
        ids = chosen[row["diagnosis"]]
        if row["patient_id"] not in ids and len(ids) < n_per_class:
            ids.append(row["patient_id"])
    keep = {pid for ids in chosen.values() for pid in ids}
    subset = tmp_path / "subset.csv"
    with open(subset, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["patient_id", "image", "diagnosis"])
        writer.writeheader()
        writer.writerows(r for r in rows if r["patient_id"] in keep)
    cohort = load_cohort(
        subset,
        images_root=table.parent,
        outcome_column="diagnosis",
        positive=["PNEUMONIA"],
        negative=["NORMAL"],
    )
    prepared = prepare_images(
        cohort, PreprocessConfig(resolution=resolution), ImageCache(tmp_path / "cache"), workers=1
    )
    return TrainingData.from_prepared(prepared)


def random_model(seed: int):
    return create_model("random", seed=seed)


@pytest.mark.slow
def test_tiny_training_run_learns_and_writes_run_folder(tmp_path):
    torch.set_num_threads(2)
    data = demo_subset(tmp_path, 32, 96)
    cfg = TrainConfig(
        init="random",
        resolution=96,
        strategy="probe+progressive",
        probe_epochs=30,
        epochs=4,
        batch_size=16,
        cv_folds=2,
        cv_repeats=1,
        eval_every_epoch=False,
        device="cpu",
    )
    run = RunFolder.create(tmp_path / "run", {"train": cfg.to_json()}, {"summary": {}})
    events = []
    summary = run_cv(run, data, cfg, random_model, on_event=events.append)

    # learns: clearly above chance on patients it never saw
    # (per-fold AUROC 0.80 here; pooling two tiny folds' uncalibrated scores costs some)
    assert summary["auroc"]["mean"] > 0.7, summary
    assert summary["pooled_auroc"] > 0.6, summary

    # the run folder the contracts describe
    assert json.loads((run.path / "state.json").read_text())["status"] == "finished"
    assert json.loads((run.path / "summary.json").read_text()) == summary
    for key in ("auroc", "balanced_accuracy", "f1", "sensitivity", "specificity", "precision"):
        assert set(summary[key]) == {"mean", "sd", "n"}
    assert summary["n_patients"] == 64 and summary["n_positive"] == 32 and summary["n_folds"] == 2
    assert len(summary["repeat_auroc"]) == 1
    with open(run.path / "predictions.csv", encoding="utf-8") as fh:
        pooled = list(csv.DictReader(fh))
    assert len(pooled) == 64 and {r["n_repeats"] for r in pooled} == {"1"}
    assert set(pooled[0]) == {"patient_id", "label", "prob", "n_repeats", "prob_r0"}
    tested = []
    for f in range(2):
        fold = run.fold(f"r0-f{f}")
        info = fold.read()
        assert info["finished"] and not set(info["train_patients"]) & set(info["test_patients"])
        assert len(info["history"]) == 34
        assert [h["phase"] for h in info["history"][-4:]] == [
            "layer4",
            "layer3",
            "layer2",
            "layer2",
        ]
        assert not (fold.path / "checkpoint.pt").exists()  # replaced by the final model
        state = load_torch(fold.path / "model.pt")
        assert "head.1.weight" in state
        tested += [r["patient_id"] for r in fold.read_predictions()]
    assert sorted(tested) == sorted(r["patient_id"] for r in pooled)
    assert not list(run.path.rglob("*.tmp"))
    types = [e.type for e in events]
    assert types[0] == "run_started" and types[-1] == "run_finished"
    assert types.count("fold_finished") == 2
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs)
    # head-only epochs report lr 0 for frozen groups
    ft = next(e for e in events if e.type == "epoch_finished" and e.phase == "layer4")
    assert ft.lrs["layer3"] == 0.0 and ft.lrs["layer4"] > 0
    assert np.isfinite([e.train_loss for e in events if e.type == "epoch_finished"]).all()
