"""`bpd`: every command a script or the app needs.

Exit codes: 0 success, 2 bad input or a file that cannot be written (the message names
the file, the row and what to do), 3 `bpd predict` predicted only some rows (each
problem row listed), 1 internal error, 130 cancelled by the user (the run stays
resumable). Output piped into a reader that stops early (`| head`) ends quietly.
Each command group lives in its own module with a `register(subparsers)` function.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import sys
import traceback

from core import __version__
from core.errors import BPDError, Cancelled, InputError, RunError, WeightsMissingError

# Modules that add subcommands; each defines register(subparsers).
COMMAND_MODULES = (
    "core.cli.weights_cmd",
    "core.cli.cohort_cmd",
    "core.cli.report_cmd",
    "core.cli.train_cmd",
    "core.cli.study_cmd",
    "core.cli.bench_cmd",
    "core.cli.predict_cmd",
    "core.cli.federate_cmd",
    "core.cli.env_cmd",
    "core.cli.selftest_cmd",
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


def command_names() -> tuple[str, ...]:
    """Every subcommand of `bpd` (aliases included): bpd-studio routes `bpd-studio
    COMMAND ...` to the command line by them (bpd_gui.launcher)."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return tuple(sub.choices)


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
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
        return code
    except (InputError, WeightsMissingError, RunError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return _reader_went_away()
    except OSError as exc:
        if not exc.filename and exc.errno not in MACHINE_ERRNOS:
            traceback.print_exc()
            return 1
        print(f"error: {describe_os_error(exc)}", file=sys.stderr)
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


# full disk or quota, read-only or protected place: the machine's, not a bug
MACHINE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def _reader_went_away() -> int:
    """stdout's reader closed it (`bpd ... | head`): not an error of ours. Point stdout at
    /dev/null so the interpreter's final flush does not raise again (Python docs)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141  # 128 + SIGPIPE, what a shell reports for a command killed by it


def describe_os_error(exc: OSError) -> str:
    """The file, what went wrong and what to do, for failures of the machine rather
    than of BPD Studio (full disk, read-only or protected folder, a file in the way)."""
    from core.paths import studio_home

    where = exc.filename or "writing a file"
    home = f"set BPD_STUDIO_HOME to a writable folder (now {studio_home()})"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"{where}: the disk is full ({_free_space(where)} free). Free some space, then "
                "run the command again; a training run continues where it stopped with "
                "`bpd resume RUN_DIR`")  # fmt: skip
    if exc.errno == errno.EROFS:
        return (f"{where}: the folder is on a read-only file system. Choose a writable "
                f"place with --out (or --html), or {home}")  # fmt: skip
    if exc.errno in (errno.EACCES, errno.EPERM):
        return (f"{where}: permission denied. Choose a folder you may write to with --out "
                f"(or --html), or {home}")  # fmt: skip
    if exc.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        return (f"{where}: a file stands where a folder is needed, or a folder where a file "
                "is; choose another --out")  # fmt: skip
    if exc.errno == errno.ENOENT:
        return f"{where}: no such file or folder"
    return f"{where}: {exc.strerror or exc}"


def _free_space(path: str) -> str:
    import shutil
    from pathlib import Path

    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return f"{shutil.disk_usage(folder).free / 2**20:.0f} MB"
    except OSError:
        return "no space"


if __name__ == "__main__":
    sys.exit(main())
