"""`bpd bench train`: images per second of the real training step.

stdout's last line is one JSON object: {"images_per_s": ..., "work_units_per_s"
(core.training.estimate's unit: a trained image is 3; one worker's rate at its
threads), the settings used, device, precision, channels_last, "path" (which path ran
and why, e.g. "fp32: this CPU (AVX2) has no bf16 (no AVX512-BF16/AMX)"), "workers"
(folds a run would train at once: core.training.parallel) and "threads" (each one's),
torch version, data-loading share, peak memory}. The same in words goes to stderr.
The app reads it to estimate how long a run takes.
"""

from __future__ import annotations

import argparse
import json
import sys

from core.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    bench = subparsers.add_parser("bench", help="measure training speed on this machine")
    sub = bench.add_subparsers(dest="bench_command", metavar="WHAT", required=True)
    train = sub.add_parser(
        "train",
        help="images/s of the final progressive stage's training step (layer2-4 + head)",
    )
    train.add_argument("--resolution", type=int, default=512, help="image side (default 512)")
    train.add_argument("--batch-size", type=int, default=8, help="default 8")
    train.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    train.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    train.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    train.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto")
    train.add_argument("--threads", type=int, default=0,
                       help="CPU threads (0: the cores shared out over --workers)")  # fmt: skip
    train.add_argument("--workers", type=int, default=0,
                       help="time one of N workers of `bpd train --workers N` (its share of "
                       "the threads); 0: the training default for a 5-fold run")  # fmt: skip
    train.add_argument(
        "--frozen-bn",
        choices=("train", "eval"),
        default="train",
        help="frozen blocks' BatchNorm: train mode (the paper, default) or eval (folded)",
    )
    train.set_defaults(func=run_bench_train)


def run_bench_train(args: argparse.Namespace) -> int:
    for name in ("resolution", "batch_size", "steps"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup < 0 or args.threads < 0 or args.workers < 0:
        raise InputError("--warmup, --threads and --workers must not be negative")
    from core.training.bench import bench_config, bench_train
    from core.training.estimate import work_units_per_s
    from core.training.parallel import default_workers, threads_per_worker
    from core.training.runtime import resolve_runtime

    cfg = bench_config(
        args.resolution,
        args.batch_size,
        device=args.device,
        precision=args.precision,
        frozen_bn_train_mode=args.frozen_bn == "train",
    )
    rt = resolve_runtime(cfg)
    workers = args.workers or default_workers(cfg, cfg.cv_folds, device_type=rt.device.type)
    threads = threads_per_worker(workers, asked=args.threads)
    if rt.device.type == "cpu" or args.threads:
        cfg = cfg.replace(num_threads=threads)
        rt = resolve_runtime(cfg)  # sets the threads
    print(f"path: {rt.path}", file=sys.stderr)
    result = bench_train(cfg, args.steps, args.warmup, runtime=rt)
    result["workers"] = workers
    # the unit of core.training.estimate, in which runs report progress and the app
    # estimates a run's length
    result["work_units_per_s"] = round(work_units_per_s(result["images_per_s"]), 3)
    print(
        f"{result['images_per_s']:.2f} images/s ({result['work_units_per_s']:.1f} work "
        f"units/s) at {args.resolution} px, batch "
        f"{args.batch_size} ({result['device']}, {result['precision']}, "
        f"{result['threads']} threads, one of {workers} worker(s)); data loading "
        f"{result['data_share'] * 100:.1f}% of a step; peak memory "
        f"{result['peak_rss_mb']:.0f} MB",
        file=sys.stderr,
    )
    print(json.dumps(result))
    return 0
