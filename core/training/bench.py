"""Training throughput of the real training step (`bpd bench train`).

Times `FoldTrainer.train_step` (the engine's own augmentation, CutMix, precision,
fast forward, optimizer and one-cycle schedule, nothing copied) in the final stage of
progressive fine-tuning: layer2-4 and head trainable, stem and layer1 frozen. The images
are synthetic uint16 arrays in the preprocessed format (throughput does not depend on
their content) held in memory as a prepared cohort is.

Also measured: the time to build a batch tensor from the uint16 array (the data-loading
share of a step) and the peak resident memory of the process.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import sys
import time
from typing import Any

import numpy as np
import torch

from core.models.registry import build_model
from core.training import schedule as sch
from core.training.config import TrainConfig, paper_preset
from core.training.data import TrainingData
from core.training.folds import Fold
from core.training.isa_limits import isa_limits
from core.training.loop import FoldTrainer
from core.training.runtime import Runtime, resolve_runtime


def bench_config(resolution: int, batch_size: int, **changes: Any) -> TrainConfig:
    """The paper's recipe, progressive fine-tuning, at the asked size."""
    return paper_preset().replace(
        strategy="progressive", resolution=resolution, batch_size=batch_size, **changes
    )


def synthetic_data(n_images: int, resolution: int, seed: int = 0) -> TrainingData:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 65536, size=(n_images, resolution, resolution), dtype=np.uint16)
    n_patients = n_images
    labels = np.arange(n_patients) % 2
    return TrainingData(
        pixels,
        np.arange(n_images),
        np.zeros(n_images, dtype=np.int64),
        labels,
        [f"p{i}" for i in range(n_patients)],
    )


def _sync(rt: Runtime) -> None:
    if rt.device.type == "cuda":
        torch.cuda.synchronize()


def bench_train(
    cfg: TrainConfig, steps: int, warmup: int = 2, runtime: Runtime | None = None
) -> dict[str, Any]:
    """Images per second of the final progressive stage's training step, after
    `warmup` untimed steps; plus the data-loading share and peak memory."""
    rt = runtime or resolve_runtime(cfg)
    n_images = max(4 * cfg.batch_size, 16)
    data = synthetic_data(n_images, cfg.resolution)
    patients = np.arange(n_images)
    fold = Fold(0, 0, patients[: n_images - 2], patients[n_images - 2 :])
    model = build_model("random", dropout=cfg.dropout, seed=cfg.seed)
    trainer = FoldTrainer(data, fold, cfg, rt, model, emit=lambda *a, **k: None)
    plan = sch.fold_plan(cfg)[-1]  # the final stage: every progressive block trains
    sch.apply_freezing(trainer.model, plan)
    trainer._finetune_optimizer()
    sch.begin_epoch_lrs(trainer.ft_opt, trainer.ft_sched, plan)
    trainer.begin_image_epoch(plan)
    rng = np.random.default_rng(1)
    batches = [
        rng.choice(trainer.train_idx, cfg.batch_size, replace=True) for _ in range(warmup + steps)
    ]
    for idx in batches[:warmup]:
        trainer.train_step(plan, idx, trainer.ft_opt, trainer.ft_sched)
    _sync(rt)
    times = []
    for idx in batches[warmup:]:
        t0 = time.perf_counter()
        loss = trainer.train_step(plan, idx, trainer.ft_opt, trainer.ft_sched)
        _sync(rt)
        times.append(time.perf_counter() - t0)
    data_times = []
    for idx in batches[warmup:]:
        t0 = time.perf_counter()
        trainer._images(idx), trainer._labels(idx)
        _sync(rt)
        data_times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    data_s = statistics.median(data_times)
    return {
        "images_per_s": round(cfg.batch_size / step_s, 3),
        "step_s_median": round(step_s, 4),
        "step_s": [round(t, 4) for t in times],
        "data_s_median": round(data_s, 5),
        "data_share": round(data_s / step_s, 4),
        "final_loss": round(loss, 4),
        "resolution": cfg.resolution,
        "batch_size": cfg.batch_size,
        "steps": steps,
        "warmup": warmup,
        "trainable": list(plan.trainable),
        "frozen_bn_train_mode": cfg.frozen_bn_train_mode,
        **rt.to_json(),
        "threads": torch.get_num_threads(),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "torch": torch.__version__,
        "cpu": cpu_model(),
        "isa_limits": isa_limits(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
