"""How many folds train at once, and with how many threads each (torch-free).

Small batches scale badly over threads: on a 2-core CPU one fold on both cores is far
from twice one fold on one core. So `bpd train --workers N` trains N folds at once in
N worker processes (core.runs.workers), each with cores // N threads.

The default (`--workers 0`, "auto"):
- a GPU (or Apple MPS): 1 (the folds share one device; one at a time);
- a CPU: one worker per 2 cores (at least 1), no more than the memory available holds
  (each worker's peak: `fold_peak_mb`), no more than the folds left to train.
The app uses the same rule for its duration estimate (core.training.estimate).
"""

from __future__ import annotations

import os

from core.training.config import TrainConfig

BASE_MB = 700.0  # torch, a ResNet-50, its gradients and optimizer state (fp32)
# Training activations per image pixel (layer2-4 trainable, fp32, freed memory kept;
# core.training.allocator): 3.0 GB measured at 512 px batch 8.
ACTIVATION_MB_PER_PIXEL = 0.0011
MEMORY_SHARE = 0.8  # leave a fifth of the available memory to everything else


def cpu_cores() -> int:
    """The cores this process may run on (a container's or taskset's limit counts)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def available_mb() -> float | None:
    """MemAvailable from /proc/meminfo (Linux); None elsewhere."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def fold_peak_mb(cfg: TrainConfig, data_mb: float = 0.0) -> float:
    """Peak memory of one worker training one fold: the model, its optimizer, a batch's
    activations and its own copy of the prepared images (`data_mb`)."""
    pixels = cfg.batch_size * cfg.resolution * cfg.resolution
    return BASE_MB + ACTIVATION_MB_PER_PIXEL * pixels + data_mb


def default_workers(
    cfg: TrainConfig,
    n_folds: int,
    *,
    device_type: str = "cpu",
    data_mb: float = 0.0,
    cores: int | None = None,
    memory_mb: float | None = None,
) -> int:
    """The `--workers 0` rule (module docstring): 1 on a GPU; on a CPU one per 2 cores,
    within the available memory and the number of folds left."""
    if device_type != "cpu" or n_folds <= 1:
        return 1
    cores = cores or cpu_cores()
    by_cores = max(1, cores // 2)
    memory_mb = available_mb() if memory_mb is None else memory_mb
    by_memory = by_cores
    if memory_mb is not None:
        by_memory = max(1, int(memory_mb * MEMORY_SHARE // fold_peak_mb(cfg, data_mb)))
    return max(1, min(by_cores, by_memory, n_folds))


def threads_per_worker(workers: int, cores: int | None = None, asked: int = 0) -> int:
    """`asked` threads if the config fixes them (num_threads > 0), else the cores shared
    out evenly."""
    if asked > 0:
        return asked
    return max(1, (cores or cpu_cores()) // max(1, workers))


def resolve_workers(
    asked: int, cfg: TrainConfig, n_folds: int, *, device_type: str, data_mb: float
) -> int:
    """`--workers N` as given (never more than the folds left), or the default rule."""
    if asked > 0:
        return max(1, min(asked, n_folds))
    return default_workers(cfg, n_folds, device_type=device_type, data_mb=data_mb)
