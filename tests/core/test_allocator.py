"""Large CPU tensors reuse the process's memory instead of new pages every step."""

from __future__ import annotations

import resource
import sys

import pytest
import torch

from core.training.allocator import keep_freed_memory
from core.training.config import TrainConfig
from core.training.runtime import resolve_runtime

MILLION = 1024 * 1024
# one "step": fp32 tensors of 64, 32, 64 and 16 MB, like a 512 px step's activations;
# glibc's mmap threshold never exceeds 32 MB
STEP_ELEMENTS = (16 * MILLION, 8 * MILLION, 16 * MILLION, 4 * MILLION)


def _step() -> None:
    tensors = []
    for n in STEP_ELEMENTS:
        t = torch.empty(n)
        t.fill_(1.0)  # touch every page
        tensors.append(t)
    del tensors


def _faults(steps: int) -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        _step()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")
def test_freed_tensors_are_reused_without_page_faults():
    assert keep_freed_memory()
    _faults(8)  # the heap grows to its working size (posix_memalign fragments at first)
    pages_per_step = sum(STEP_ELEMENTS) * 4 // resource.getpagesize()
    # default glibc: the 64 MB tensors are new mmaps, ~40,000 faults per step here
    assert _faults(3) < pages_per_step // 4


def test_cpu_runtime_reports_it():
    rt = resolve_runtime(TrainConfig(device="cpu", precision="fp32"))
    assert rt.to_json()["keeps_freed_memory"] == sys.platform.startswith("linux")
