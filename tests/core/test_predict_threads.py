"""A prediction's thread count: the cores other running processes leave, at least one,
for the prediction only; OMP_NUM_THREADS, when set, wins."""

from __future__ import annotations

import sys

import pytest
import torch

from core.predict import threads


def test_free_cores_is_what_other_work_leaves_and_at_least_one():
    assert threads.free_cores(2, 0) == 2
    assert threads.free_cores(2, 1) == 1
    assert threads.free_cores(2, 7) == 1
    assert threads.free_cores(16, 3) == 13


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/loadavg")
def test_the_threads_follow_the_busy_cores_for_the_block_only(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "cpu_cores", lambda: 4)
    assert isinstance(threads.running_elsewhere(), int)
    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "running_elsewhere", lambda: 3)
    with threads.free_core_threads() as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before  # the caller's setting is back
    monkeypatch.setattr(threads, "running_elsewhere", lambda: 1)
    with threads.free_core_threads() as n:
        assert n == 3 and torch.get_num_threads() == 3
    assert torch.get_num_threads() == before
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the user's setting is left alone
    with threads.free_core_threads() as n:
        assert n is None and torch.get_num_threads() == before
