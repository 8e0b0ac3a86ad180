"""How many threads a prediction uses: the cores that other work leaves free.

Scoring one image is a few small convolutions per model. With two OpenMP threads on a
2-core machine whose cores are busy (a training run, other jobs), every barrier waits
for a descheduled thread: `bench_predict.py --serve` at load 3.5-3.7 took 0.8-8.7 s
per image with 2 threads and 0.2-0.4 s with 1 (docs/benchmarks.md). So the app's
kept-loaded `bpd predict --serve` counts, before each request, the processes running
right now (Linux: /proc/loadavg, sampled a few times, the smallest count, so short
bursts do not count) and uses the cores left, at least one. A different thread count
sums in another order: probabilities can differ from a one-shot `bpd predict` (which
keeps torch's default) in the sixth decimal.
OMP_NUM_THREADS, when set, decides instead.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
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


@contextlib.contextmanager
def free_core_threads() -> Iterator[int | None]:
    """torch's thread count set to the free cores for the block, then restored (a
    caller in the same process, a test, keeps its own); yields the count, or None when
    left alone (OMP_NUM_THREADS set, or the busy count unknown)."""
    busy = None if os.environ.get("OMP_NUM_THREADS") else running_elsewhere()
    if busy is None:
        yield None
        return
    import torch

    before = torch.get_num_threads()
    threads = free_cores(cpu_cores(), busy)
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)
