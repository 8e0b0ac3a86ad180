"""How many threads a prediction uses: the cores that other work leaves free.

Scoring one image is a few small convolutions per model. With two OpenMP threads on a
2-core machine whose cores are busy (a training run, other jobs), every barrier waits
for a descheduled thread: `bench_predict.py --serve` at load 3.5-3.7 took 0.8-8.7 s
per image with 2 threads and 0.2-0.4 s with 1 (docs/benchmarks.md). So the app's
kept-loaded child (`bpd predict --serve`), before each request, counts the processes
running right now (Linux: /proc/loadavg, sampled a few times, the smallest count, so
short bursts do not count) and uses the cores left, at least one.
OMP_NUM_THREADS, when set, decides instead.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from core.training.parallel import cpu_cores

SAMPLES = 3
SAMPLE_GAP_S = 0.005


def running_elsewhere(samples: int = SAMPLES) -> int | None:
    """Processes (threads) running now besides this reading one, the smallest of a few
    samples; None where the kernel does not say (not Linux)."""
    counts = []
    for i in range(samples):
        try:
            field = Path("/proc/loadavg").read_text().split()[3]  # "running/total"
            counts.append(int(field.split("/")[0]) - 1)
        except (OSError, IndexError, ValueError):
            return None
        if i + 1 < samples:
            time.sleep(SAMPLE_GAP_S)
    return max(0, min(counts))


def free_cores(cores: int, busy: int) -> int:
    return max(1, min(cores, cores - busy))


def use_free_cores() -> int | None:
    """Set torch's thread count to the free cores; the count, or None when left alone
    (OMP_NUM_THREADS set, or the busy count unknown)."""
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    busy = running_elsewhere()
    if busy is None:
        return None
    import torch

    threads = free_cores(cpu_cores(), busy)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads
