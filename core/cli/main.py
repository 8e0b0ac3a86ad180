"""`bpd`: every command a script or the app needs.

Exit codes: 0 success, 2 bad input (message names the file, row and problem),
1 internal error, 130 cancelled by the user (the run stays resumable).
Each command group lives in its own module with a `register(subparsers)` function.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback

from core import __version__
from core.errors import BPDError, Cancelled, InputError, WeightsMissingError

# Modules that add subcommands; each defines register(subparsers).
COMMAND_MODULES = (
    "core.cli.weights_cmd",
    "core.cli.cohort_cmd",
    "core.cli.report_cmd",
    "core.cli.train_cmd",
    "core.cli.bench_cmd",
    "core.cli.predict_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bpd",
        description="BPD Studio: fine-tune and evaluate day-1 chest radiograph models "
        "for bronchopulmonary dysplasia. Research use only; not a medical device.",
    )
    parser.add_argument("--version", action="version", version=f"bpd-studio {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (InputError, WeightsMissingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Cancelled as exc:
        print(f"cancelled: {exc}", file=sys.stderr)
        return 130
    except BPDError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception:  # an internal bug: show everything needed to report it
        traceback.print_exc()
        return 1


if __name__ == "__main__":
    sys.exit(main())
