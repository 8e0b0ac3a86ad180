"""Speed-up of `bpd bench train` over the plain fp32 loop, measured side by side.

    python benchmarks/bench_train_speed.py [--resolutions 512 224] [--repeats 3]
        [--steps 5] [--threads 0] [--frozen-bn train|eval] [--engine-args "..."]

For each resolution, runs benchmarks/reference_fp32_loop.py and `bpd bench train`
alternately (reference, engine, reference, engine, ...) as separate processes at batch 8,
so both see the same machine load; reports the median images/s of each and their ratio.
`--frozen-bn` sets the frozen blocks' BatchNorm mode of both loops (METHOD.md offers
train mode, the authors' code, and eval mode).
Load average before and after goes into the output. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _last_json(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    raise RuntimeError(f"no JSON line in output:\n{text[-2000:]}")


def _run(cmd: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return _last_json(proc.stdout)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--resolutions", type=int, nargs="+", default=[512, 224])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="both loops (0: torch default)")
    p.add_argument("--frozen-bn", choices=("train", "eval"), default="train",
                   help="frozen blocks' BatchNorm mode, both loops")  # fmt: skip
    p.add_argument("--engine-args", default="", help="extra flags for bpd bench train")
    args = p.parse_args(argv)
    py = sys.executable
    common = ["--batch-size", str(args.batch_size), "--steps", str(args.steps)]
    common += ["--threads", str(args.threads), "--frozen-bn", args.frozen_bn]
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    results = {}
    for res in args.resolutions:
        ref_cmd = [py, "benchmarks/reference_fp32_loop.py", "--resolution", str(res), *common]
        eng_cmd = [py, "-m", "core.cli.main", "bench", "train", "--resolution", str(res)]
        eng_cmd += [*common, "--device", "cpu", *shlex.split(args.engine_args)]
        ref, eng = [], []
        for r in range(args.repeats):
            ref.append(_run(ref_cmd))
            eng.append(_run(eng_cmd))
            print(
                f"{res} px repeat {r + 1}: reference {ref[-1]['images_per_s']:.2f} img/s, "
                f"engine {eng[-1]['images_per_s']:.2f} img/s "
                f"(load {os.getloadavg()[0]:.2f})",
                flush=True,
            )
        ref_med = statistics.median(x["images_per_s"] for x in ref)
        eng_med = statistics.median(x["images_per_s"] for x in eng)
        results[str(res)] = {
            "reference_images_per_s": ref_med,
            "engine_images_per_s": eng_med,
            "speedup": round(eng_med / ref_med, 2),
            "reference_runs": [x["images_per_s"] for x in ref],
            "engine_runs": [x["images_per_s"] for x in eng],
            "reference_settings": {
                k: ref[-1].get(k) for k in ("precision", "threads", "frozen_bn_train_mode")
            },
            "engine_settings": {
                k: eng[-1].get(k)
                for k in ("precision", "channels_last", "threads", "frozen_bn_train_mode")
            },
            "engine_data_share": statistics.median(x["data_share"] for x in eng),
            "engine_peak_rss_mb": max(x["peak_rss_mb"] for x in eng),
        }
        print(f"{res} px: speed-up {results[str(res)]['speedup']}x", flush=True)
    out = {
        "results": results,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "repeats": args.repeats,
        "threads": args.threads,
        "frozen_bn": args.frozen_bn,
        "engine_args": args.engine_args,
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "seconds": round(time.perf_counter() - t0, 1),
        "cpu": eng[-1].get("cpu"),
        "torch": eng[-1].get("torch"),
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
