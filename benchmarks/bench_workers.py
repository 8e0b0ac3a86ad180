"""`bpd demo` end to end with 1 vs N workers, alternating, on this machine.

    python benchmarks/bench_workers.py [--workers 1 2] [--repeats 1] [--init xrv]
        [--demo-args "..."]

Each repeat runs `bpd demo --workers W --quiet --no-report --out TMP` once per W, in
turn (1, 2, 1, 2, ...), so every setting sees the same machine load; the wall time
includes the import and image preparation, as a user sees it. Reports per W the wall
seconds of each run, their median, the runs' mean fold AUROC and the precision path
the runs took, plus the CPU, its cores and the load average before and after.
Run it under benchmarks/avx2.sh to emulate an AVX2-only CPU on a newer one (a CPU without
bf16 runs fp32 by itself). The last line of output is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.training.isa_limits import isa_limits  # noqa: E402


def _demo(workers: int, init: str, extra: list[str], out: Path) -> dict:
    cmd = [sys.executable, "-m", "core.cli.main", "demo", "--workers", str(workers),
           "--init", init, "--quiet", "--no-report", "--out", str(out), *extra]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    from core.runs.folder import RunFolder

    run = RunFolder(out)
    summary = run.summary() or {}
    started = next((e for e in run.read_events()[0] if e.type == "run_started"), None)
    runtime = started.runtime if started else {}
    return {
        "wall_s": round(wall, 1),
        "auroc_mean": (summary.get("auroc") or {}).get("mean"),
        "path": runtime.get("path"),
        "workers": runtime.get("workers"),
        "threads": runtime.get("threads"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--init", default="xrv")
    ap.add_argument("--demo-args", default="", help="more `bpd demo` flags")
    args = ap.parse_args()
    from core.training.bench import cpu_model
    from core.training.parallel import cpu_cores

    load_before = os.getloadavg()
    runs: dict[int, list[dict]] = {w: [] for w in args.workers}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for w in args.workers:
                result = _demo(w, args.init, shlex.split(args.demo_args), Path(tmp) / f"{w}-{r}")
                runs[w].append(result)
                print(f"workers {w}: {result['wall_s']} s, mean AUROC {result['auroc_mean']}",
                      file=sys.stderr)  # fmt: skip
    out = {
        "results": {
            str(w): {
                "median_wall_s": statistics.median(x["wall_s"] for x in rs),
                "runs": rs,
            }
            for w, rs in runs.items()
        },
        "cpu": cpu_model(),
        "cores": cpu_cores(),
        "isa_limits": isa_limits(),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
