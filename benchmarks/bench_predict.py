"""`bpd predict RUN IMAGE` from a cold start (a new process each time), timed; and the
Predict page's kept-loaded child (`bpd predict RUN --serve`) image after image.

    python benchmarks/bench_predict.py RUN_OR_MODEL IMAGE [--repeats 3] [--overlays]
    python benchmarks/bench_predict.py RUN_OR_MODEL IMAGE --serve [--repeats 3] [--overlays]

Cold: runs `bpd predict RUN IMAGE --out TMP/x.csv` `--repeats` times as a user would
(import, model loading, preprocessing, forward passes, CSV; with --overlays also
`--cam DIR`: Grad-CAM maps and overlay PNGs) and reports the wall and CPU seconds of
each, their medians and the largest peak memory of a run. --serve: starts one `--serve`
process and times its start until "ready" (imports, models loaded), then `--repeats` + 1
requests of the same image: the first, and the median of the others (warm: what every
later click of the Predict page costs). The load average is reported; the last line is JSON.
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

from core.training.isa_limits import isa_limits  # noqa: E402

BPD = [sys.executable, "-m", "core.cli.main"]


def _children_cpu_s() -> float:
    """CPU seconds of the finished child processes so far (less sensitive than wall time
    to other jobs sharing the cores)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cold(args, tmp: Path) -> dict:
    walls, cpus, model = [], [], ""
    for r in range(args.repeats):
        cmd = [*BPD, "predict", args.model, args.image, "--out", str(tmp / f"x{r}.csv"),
               "--quiet"]  # fmt: skip
        if args.overlays:
            cmd += ["--cam", str(tmp / f"cam{r}")]
        t0, cpu0 = time.perf_counter(), _children_cpu_s()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        walls.append(round(time.perf_counter() - t0, 2))
        cpus.append(round(_children_cpu_s() - cpu0, 2))
        if proc.returncode != 0:
            raise SystemExit(f"bpd predict failed:\n{proc.stderr[-3000:]}")
        model = proc.stderr.splitlines()[0] if proc.stderr else ""
        print(f"run {r + 1}: {walls[-1]} s", file=sys.stderr)
    return {"wall_s": walls, "median_wall_s": statistics.median(walls), "cpu_s": cpus,
            "median_cpu_s": statistics.median(cpus), "model": model}  # fmt: skip


def served(args, tmp: Path) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.Popen([*BPD, "predict", args.model, "--serve", "--quiet"], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip

    def answer() -> dict:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"bpd predict --serve ended (exit {proc.wait()})")
        return json.loads(line)

    ready = answer()
    start_s = round(time.perf_counter() - t0, 2)
    walls = []
    for r in range(args.repeats + 1):
        request = {"id": r, "inputs": [args.image], "out": str(tmp / f"s{r}.csv")}
        if args.overlays:
            request["cam"] = str(tmp / f"scam{r}")
        t0 = time.perf_counter()
        proc.stdin.write(json.dumps(request) + "\n")
        proc.stdin.flush()
        got = answer()
        while got["event"] == "progress":
            got = answer()
        walls.append(round(time.perf_counter() - t0, 3))
        if got["event"] != "done":
            raise SystemExit(f"request failed: {got.get('message')}")
        print(f"request {r + 1}: {walls[-1]} s", file=sys.stderr)
    proc.stdin.close()
    proc.wait(timeout=60)
    return {
        "process_cpu_s": round(_children_cpu_s(), 2),  # start, every request, exit
        "start_to_ready_s": start_s,
        "first_image_s": walls[0],
        "warm_image_s": walls[1:],
        "median_warm_image_s": statistics.median(walls[1:]),
        "model": ready.get("model", ""),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="a run folder or an exported model folder")
    ap.add_argument("image")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--overlays", action="store_true", help="also Grad-CAM (--cam DIR)")
    ap.add_argument("--serve", action="store_true", help="time the kept-loaded child")
    args = ap.parse_args()
    from core.training.bench import cpu_model

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        timed = served(args, Path(tmp)) if args.serve else cold(args, Path(tmp))
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({
        "mode": "serve" if args.serve else "cold",
        "overlays": args.overlays,
        **timed,
        "peak_rss_mb": round(peak_kib / 1024, 1),
        "cpu": cpu_model(),
        "isa_limits": isa_limits(),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
    }))  # fmt: skip


if __name__ == "__main__":
    main()
