"""The serve child's thread count: the cores other running processes leave, at least
one; OMP_NUM_THREADS, when set, wins."""

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
def test_the_threads_follow_the_busy_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "cpu_cores", lambda: 4)
    before = torch.get_num_threads()
    try:
        assert isinstance(threads.running_elsewhere(), int)
        monkeypatch.setattr(threads, "running_elsewhere", lambda: 3)
        assert threads.use_free_cores() == 1 and torch.get_num_threads() == 1
        monkeypatch.setattr(threads, "running_elsewhere", lambda: 1)
        assert threads.use_free_cores() == 3 and torch.get_num_threads() == 3
        monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the user's setting is left alone
        assert threads.use_free_cores() is None and torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
