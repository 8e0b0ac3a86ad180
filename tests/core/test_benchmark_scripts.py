"""The speed-up benchmark runs end to end (tiny sizes) and reports both loops' settings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_train_speed_runs_both_loops_with_the_same_frozen_bn_mode():
    cmd = [sys.executable, "benchmarks/bench_train_speed.py", "--resolutions", "32",
           "--repeats", "1", "--steps", "1", "--threads", "1", "--frozen-bn", "eval"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    result = out["results"]["32"]
    assert result["reference_images_per_s"] > 0 and result["engine_images_per_s"] > 0
    assert result["speedup"] > 0
    assert result["engine_settings"]["frozen_bn_train_mode"] is False
    assert result["reference_settings"]["frozen_bn_train_mode"] is False
    assert result["reference_settings"]["precision"] == "fp32"
    assert out["frozen_bn"] == "eval"
