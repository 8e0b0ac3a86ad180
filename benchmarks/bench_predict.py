"""`bpd predict RUN IMAGE` from a cold start (a new process each time), timed.

    python benchmarks/bench_predict.py RUN_OR_MODEL IMAGE [--repeats 3]

Runs `bpd predict RUN IMAGE --out TMP/x.csv` `--repeats` times as a user would (import,
model loading, preprocessing, forward passes, CSV) and reports the wall seconds of each,
their median, the largest peak memory of a run and the load average. The last line is
JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="a run folder or an exported model folder")
    ap.add_argument("image")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from core.training.bench import cpu_model

    load_before = os.getloadavg()
    walls = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            out = Path(tmp) / f"x{r}.csv"
            cmd = [sys.executable, "-m", "core.cli.main", "predict", args.model, args.image,
                   "--out", str(out), "--quiet"]  # fmt: skip
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            walls.append(round(time.perf_counter() - t0, 2))
            if proc.returncode != 0:
                raise SystemExit(f"bpd predict failed:\n{proc.stderr[-3000:]}")
            model = proc.stderr.splitlines()[0] if proc.stderr else ""
            print(f"run {r + 1}: {walls[-1]} s", file=sys.stderr)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({
        "wall_s": walls,
        "median_wall_s": statistics.median(walls),
        "peak_rss_mb": round(peak_kib / 1024, 1),
        "model": model,
        "cpu": cpu_model(),
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", ""),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
    }))  # fmt: skip


if __name__ == "__main__":
    main()
