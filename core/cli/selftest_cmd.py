"""`bpd self-test [--dicom FILE]` (also `bpd-studio --self-test`): check that this
installation decodes, trains, explains, reports and starts its child processes, offline
(core.selftest). One line per check; exit 0 only when every check passed, else 1."""

from __future__ import annotations

import argparse
import time


def _self_test(args: argparse.Namespace) -> int:
    from core.selftest import run_self_test

    t0 = time.perf_counter()
    results = run_self_test(args.dicom, on_result=lambda r: print(r.line(), flush=True))
    failed = [r.name for r in results if not r.passed]
    seconds = time.perf_counter() - t0
    if failed:
        print(f"self-test FAILED: {', '.join(failed)} ({len(failed)} of {len(results)} "
              f"checks, {seconds:.1f} s)")  # fmt: skip
        return 1
    print(f"self-test passed: {len(results)} checks in {seconds:.1f} s")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "self-test",
        help="check this installation (DICOM decoding, training, Grad-CAM, report, child "
        "processes) in under a minute, offline",
    )
    p.add_argument(
        "--dicom", metavar="FILE",
        help="a DICOM file of your own to decode instead of the bundled JPEG 2000 one",
    )  # fmt: skip
    p.set_defaults(func=_self_test)
