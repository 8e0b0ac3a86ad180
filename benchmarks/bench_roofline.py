"""How close a training step comes to this CPU's compute bound, and what that allows.

    python benchmarks/bench_roofline.py [--resolution 512] [--batch-size 8] [--steps 3]
    benchmarks/avx2.sh python benchmarks/bench_roofline.py ...   # as on an AVX2-only CPU

1. The arithmetic of one training step of the final progressive stage (forward of the
   whole network, backward of layer2-4 and the head), counted by
   torch.utils.flop_counter on the model. The engine and the plain fp32 loop
   (benchmarks/reference_fp32_loop.py) do the same arithmetic; they differ in how.
2. The practical peak: the best GFLOP/s of the step's own convolutions and matrix
   products (each stage's 3x3 and 1x1 shapes, fp32, channels_last and NCHW) run alone
   at the thread count training uses. No implementation of the step beats it for long.
3. The step times of `bpd bench train` and of the plain loop (one run each, as
   subprocesses), their GFLOP/s and share of the bound, and the largest speed-up over
   the plain loop that any implementation of the same arithmetic could reach here:
   plain-loop step time / (FLOPs / peak).
The last line of output is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from reference_fp32_loop import FROZEN_PREFIXES  # noqa: E402  (the plain loop, this folder)
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from core.models.registry import build_model  # noqa: E402
from core.training.bench import cpu_model  # noqa: E402
from core.training.isa_limits import isa_limits  # noqa: E402

# (input channels, output channels, input side as a fraction of the image side) per stage
CONV3X3 = ((128, 128, 8), (256, 256, 16), (512, 512, 32))
CONV1X1 = ((512, 128, 8), (128, 512, 8), (1024, 256, 16), (256, 1024, 16), (2048, 512, 32))


def step_flops(resolution: int, batch_size: int) -> float:
    model = build_model("random", seed=0)
    for name, p in model.named_parameters():
        p.requires_grad_(not name.startswith(FROZEN_PREFIXES))
    x = torch.zeros(batch_size, 1, resolution, resolution)
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    return float(counter.get_total_flops())


def _best_seconds(fn, repeats: int = 4) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def practical_peak(resolution: int, batch_size: int) -> dict:
    """GFLOP/s of each of the step's kernel shapes alone; "peak" is the best of them."""
    kernels = {}
    for cin, cout, div in CONV3X3:
        side = max(1, resolution // div)
        for fmt in (torch.channels_last, torch.contiguous_format):
            x = torch.randn(batch_size, cin, side, side).contiguous(memory_format=fmt)
            w = torch.randn(cout, cin, 3, 3).contiguous(memory_format=fmt)
            s = _best_seconds(lambda x=x, w=w: F.conv2d(x, w, None, 1, 1))
            flops = 2 * batch_size * side * side * cin * cout * 9
            name = "channels_last" if fmt is torch.channels_last else "nchw"
            kernels[f"conv3x3 {cin}->{cout} {side}px {name}"] = flops / s / 1e9
    for cin, cout, div in CONV1X1:
        rows = batch_size * max(1, resolution // div) ** 2
        a, w = torch.randn(rows, cin), torch.randn(cout, cin)
        s = _best_seconds(lambda a=a, w=w: F.linear(a, w))
        kernels[f"linear {rows}x{cin}->{cout}"] = 2 * rows * cin * cout / s / 1e9
    return {"peak_gflops": max(kernels.values()), "kernels_gflops": kernels}


def _timed_run(cmd: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--resolution", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=3)
    args = p.parse_args(argv)
    load_before = os.getloadavg()
    flops = step_flops(args.resolution, args.batch_size)
    peak = practical_peak(args.resolution, args.batch_size)
    bound_s = flops / (peak["peak_gflops"] * 1e9)
    size = ["--resolution", str(args.resolution), "--batch-size", str(args.batch_size)]
    size += ["--steps", str(args.steps)]
    py = sys.executable
    runs = {
        "engine": _timed_run([py, "-m", "core.cli.main", "bench", "train", *size]),
        "plain_fp32_loop": _timed_run([py, "benchmarks/reference_fp32_loop.py", *size]),
    }
    out = {
        "resolution": args.resolution,
        "batch_size": args.batch_size,
        "step_gflop": round(flops / 1e9, 1),
        "peak_gflops": round(peak["peak_gflops"], 1),
        "bound_step_s": round(bound_s, 3),
    }
    for name, run in runs.items():
        step_s = run["step_s_median"]
        out[name] = {
            "step_s": step_s,
            "gflops": round(flops / step_s / 1e9, 1),
            "share_of_bound": round(bound_s / step_s, 3),
            "path": run.get("path", "fp32 (plain)"),
        }
        print(
            f"{name}: {step_s:.3f} s/step, {flops / step_s / 1e9:.0f} GFLOP/s, "
            f"{bound_s / step_s:.0%} of the bound",
            flush=True,
        )
    ref_s = runs["plain_fp32_loop"]["step_s_median"]
    out["best_possible_speedup"] = round(ref_s / bound_s, 2)
    out["measured_speedup"] = round(ref_s / runs["engine"]["step_s_median"], 2)
    out["kernels_gflops"] = {k: round(v, 1) for k, v in peak["kernels_gflops"].items()}
    out.update(
        threads=torch.get_num_threads(),
        cpu=cpu_model(),
        isa_limits=isa_limits(),
        torch=torch.__version__,
        load_average_before=[round(v, 2) for v in load_before],
        load_average_after=[round(v, 2) for v in os.getloadavg()],
        date=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    )
    print(
        f"{out['step_gflop']} GFLOP per step; peak {out['peak_gflops']} GFLOP/s -> bound "
        f"{bound_s:.3f} s/step; best possible speed-up over the plain loop "
        f"{out['best_possible_speedup']}x, measured {out['measured_speedup']}x",
        flush=True,
    )
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
