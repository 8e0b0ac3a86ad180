"""`bpd env [--json]`: what this machine trains on, and the preset that fits it.

The app asks this in a child process (its own process never imports torch) to open the
Train form on a recipe the machine can run: `paper` where a CUDA GPU is present, else
`cpu-fast` (docs/method.md). Read-only: it changes nothing.
"""

from __future__ import annotations

import argparse
import json
import os


def machine_report() -> dict:
    """{device, gpu, cpu_cores, torch, suggested_preset, reason}."""
    import torch

    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    device = "cuda" if cuda else "mps" if mps else "cpu"
    gpu = torch.cuda.get_device_name(0) if cuda else ("Apple GPU (MPS)" if mps else None)
    cores = os.cpu_count() or 1
    if cuda:
        preset, reason = "paper", f"a CUDA GPU ({gpu}) runs the paper's recipe"
    else:
        where = "Apple's MPS GPU" if mps else f"{cores} CPU cores and no CUDA GPU"
        preset, reason = (
            "cpu-fast",
            f"{where}: the paper's 512 px recipe would take hours, cpu-fast minutes",
        )
    return {
        "device": device,
        "gpu": gpu,
        "cpu_cores": cores,
        "torch": torch.__version__,
        "suggested_preset": preset,
        "reason": reason,
    }


def _env(args: argparse.Namespace) -> int:
    report = machine_report()
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"device: {report['device']}" + (f" ({report['gpu']})" if report["gpu"] else ""))
    print(f"CPU cores: {report['cpu_cores']}; torch {report['torch']}")
    print(f"suggested preset: {report['suggested_preset']} ({report['reason']})")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("env", help="this machine's device and the preset that fits it")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_env)
