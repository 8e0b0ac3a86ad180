"""`bpd bench train`: images per second of the real training step.

The last line of output is one JSON object: {"images_per_s": ..., "work_units_per_s"
(core.training.estimate's unit: a trained image is 3), the settings used,
device, precision, channels_last, threads, torch version, data-loading share, peak
memory}. The app reads it to estimate how long a run takes.
"""

from __future__ import annotations

import argparse
import json

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
    train.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
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
    if args.warmup < 0 or args.threads < 0:
        raise InputError("--warmup and --threads must not be negative")
    from core.training.bench import bench_config, bench_train
    from core.training.estimate import work_units_per_s

    cfg = bench_config(
        args.resolution,
        args.batch_size,
        device=args.device,
        precision=args.precision,
        num_threads=args.threads,
        frozen_bn_train_mode=args.frozen_bn == "train",
    )
    result = bench_train(cfg, args.steps, args.warmup)
    # the unit of core.training.estimate, in which runs report progress and the app
    # estimates a run's length
    result["work_units_per_s"] = round(work_units_per_s(result["images_per_s"]), 3)
    print(
        f"{result['images_per_s']:.2f} images/s ({result['work_units_per_s']:.1f} work "
        f"units/s) at {args.resolution} px, batch "
        f"{args.batch_size} ({result['device']}, {result['precision']}, "
        f"{result['threads']} threads); data loading {result['data_share'] * 100:.1f}% "
        f"of a step; peak memory {result['peak_rss_mb']:.0f} MB"
    )
    print(json.dumps(result))
    return 0
