"""fp32 training step with and without channels_last, A/B in one process.

    python benchmarks/bench_channels_last.py [--resolution 128] [--batch-size 16]
        [--rounds 4] [--steps 3] [--threads 0]

Two FoldTrainers (the engine's real `train_step`, fp32, the final progressive stage)
differ only in Runtime.channels_last; each round times `--steps` steps of one, then of
the other, alternating, so both see the same machine load (the machine may be shared).
Prints the median seconds per step of each, their ratio and the load average; the last
line is JSON. Run it under benchmarks/avx2.sh to emulate an AVX2-only CPU on a newer one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from core.models.registry import build_model
from core.training import schedule as sch
from core.training.bench import bench_config, cpu_model, synthetic_data
from core.training.folds import Fold
from core.training.isa_limits import isa_limits
from core.training.loop import FoldTrainer
from core.training.runtime import Runtime


def _trainer(cfg, channels_last: bool):
    rt = Runtime(torch.device("cpu"), "fp32", channels_last)
    n = max(4 * cfg.batch_size, 16)
    data = synthetic_data(n, cfg.resolution)
    fold = Fold(0, 0, np.arange(n - 2), np.arange(n - 2, n))
    model = build_model("random", dropout=cfg.dropout, seed=cfg.seed)
    trainer = FoldTrainer(data, fold, cfg, rt, model, emit=lambda *a, **k: None)
    plan = sch.fold_plan(cfg)[-1]
    sch.apply_freezing(trainer.model, plan)
    trainer._finetune_optimizer()
    sch.begin_epoch_lrs(trainer.ft_opt, trainer.ft_sched, plan)
    trainer.begin_image_epoch(plan)
    return trainer, plan


def _steps(trainer, plan, n: int, rng) -> list[float]:
    out = []
    for _ in range(n):
        idx = rng.choice(trainer.train_idx, trainer.cfg.batch_size)
        t0 = time.perf_counter()
        trainer.train_step(plan, idx, trainer.ft_opt, trainer.ft_sched)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    cfg = bench_config(args.resolution, args.batch_size, precision="fp32", device="cpu")
    rng = np.random.default_rng(0)
    pair = {name: _trainer(cfg, cl) for name, cl in (("nchw", False), ("channels_last", True))}
    for trainer, plan in pair.values():  # warm-up: oneDNN primitives, allocator
        _steps(trainer, plan, 2, rng)
    times: dict[str, list[float]] = {name: [] for name in pair}
    for _ in range(args.rounds):
        for name, (trainer, plan) in pair.items():
            times[name] += _steps(trainer, plan, args.steps, rng)
    med = {name: statistics.median(t) for name, t in times.items()}
    result = {
        "resolution": args.resolution,
        "batch_size": args.batch_size,
        "median_step_s": {k: round(v, 4) for k, v in med.items()},
        "channels_last_speedup": round(med["nchw"] / med["channels_last"], 3),
        "threads": torch.get_num_threads(),
        "isa_limits": isa_limits(),
        "cpu": cpu_model(),
        "torch": torch.__version__,
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
    }
    print(
        f"{args.resolution} px batch {args.batch_size}: NCHW {med['nchw']:.3f} s/step, "
        f"channels_last {med['channels_last']:.3f} s/step "
        f"(x{result['channels_last_speedup']:.2f})",
        file=sys.stderr,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
