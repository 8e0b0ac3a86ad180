"""The two trainings a federation is compared with, on the same folds and test patients:
each site alone (`local`), and every site's training patients pooled in one place
(`pooled`: what it would be if the images could move; only a simulation can run it).
Both use the engine unchanged (FoldTrainer) with the federation's recipe, epochs equal
to rounds, and the same starting model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from core.federated.site import site_folds
from core.runs.folder import RunFolder
from core.scoring.metrics import binary_metrics
from core.training.config import TrainConfig
from core.training.data import TrainingData
from core.training.folds import Fold
from core.training.loop import FoldResult, FoldTrainer
from core.training.runtime import Runtime

Say = Callable[[str], None]


def _train(data: TrainingData, fold: Fold, cfg: TrainConfig, runtime: Runtime) -> FoldResult:
    from core.models.registry import create_model

    model = create_model(cfg.init, dropout=cfg.dropout, seed=cfg.seed)
    return FoldTrainer(data, fold, cfg, runtime, model, emit=lambda *a, **k: None).run()


def _rows(data: TrainingData, patients, labels, probs, logits, fold: int) -> list[dict[str, Any]]:
    return [
        {"patient_id": data.patient_ids[int(p)], "label": int(y), "prob": float(pr),
         "logit": float(lg), "repeat": 0, "fold": fold}
        for p, y, pr, lg in zip(patients, labels, probs, logits, strict=True)
    ]  # fmt: skip


def local_only(
    run: RunFolder, sites: dict[str, TrainingData], cfg: TrainConfig, runtime: Runtime, say: Say
) -> dict[str, list[dict[str, float]]]:
    """Each site trains alone on its fold-k training patients, scored on fold k."""
    out: dict[str, list[dict[str, float]]] = {}
    for i, (name, data) in enumerate(sites.items()):
        out[name] = []
        for k, f in enumerate(site_folds(data.labels, cfg)):
            say(f"local-only: site {name}, fold {k + 1}")
            res = _train(data, Fold(i, k, f.train, f.test), cfg, runtime)
            rows = _rows(data, res.patient_index, res.labels, res.probs, res.logits, k)
            run.site(name).fold(f"local-f{k}").write_predictions(rows)
            out[name].append({**res.metrics, "n-test": float(len(res.labels))})
    return out


def pool(sites: dict[str, TrainingData]) -> tuple[TrainingData, np.ndarray, dict[str, np.ndarray]]:
    """One TrainingData of every site (patient ids prefixed by the site), the site of
    each pooled patient, and each site's pooled patient indices."""
    pixels, owner, rank, labels, ids, site_of = [], [], [], [], [], []
    offsets: dict[str, np.ndarray] = {}
    n = 0
    for name, d in sites.items():
        pixels.append(d.pixels)
        owner.append(d.image_patient + n)
        rank.append(d.image_rank)
        labels.append(d.labels)
        ids.extend(f"{name}:{p}" for p in d.patient_ids)
        site_of.extend([name] * len(d.labels))
        offsets[name] = np.arange(n, n + len(d.labels))
        n += len(d.labels)
    data = TrainingData(
        np.concatenate(pixels), np.concatenate(owner), np.concatenate(rank),
        np.concatenate(labels), ids,
    )  # fmt: skip
    return data, np.array(site_of), offsets


def pooled(
    run: RunFolder, sites: dict[str, TrainingData], cfg: TrainConfig, runtime: Runtime, say: Say
) -> dict[str, list[dict[str, float]]]:
    """Fold k: every site's fold-k training patients in one training; each site's fold-k
    test patients scored by it (the same test patients as every other arm)."""
    data, site_of, offsets = pool(sites)
    folds = {name: site_folds(d.labels, cfg) for name, d in sites.items()}
    n_folds = min(len(f) for f in folds.values())
    out: dict[str, list[dict[str, float]]] = {name: [] for name in sites}
    for k in range(n_folds):
        say(f"pooled: fold {k + 1}")
        train = np.concatenate([offsets[s][folds[s][k].train] for s in sites])
        test = np.concatenate([offsets[s][folds[s][k].test] for s in sites])
        res = _train(data, Fold(0, k, np.sort(train), np.sort(test)), cfg, runtime)
        where = site_of[res.patient_index]
        for name, d in sites.items():
            mine = where == name
            metrics = binary_metrics(res.labels[mine], res.probs[mine], cfg.threshold)
            local_index = res.patient_index[mine] - offsets[name][0]
            rows = _rows(d, local_index, res.labels[mine], res.probs[mine], res.logits[mine], k)
            run.site(name).fold(f"pooled-f{k}").write_predictions(rows)
            out[name].append({**metrics, "n-test": float(mine.sum())})
    return out
