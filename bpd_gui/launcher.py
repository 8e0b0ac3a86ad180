"""`bpd-studio`: the one executable of an installed BPD Studio, and the entry point of
the PyInstaller bundle (packaging/).

    bpd-studio [--screenshots DIR] [--no-restore]   the desktop app (bpd_gui.main)
    bpd-studio COMMAND ...                          the `bpd` command line (core.cli.main),
                                                    e.g. `bpd-studio train TABLE ...`
    bpd-studio --cli [-v] COMMAND ...               the same: how the frozen app starts its
                                                    jobs (job_client.base_command)
    bpd-studio --self-test [--dicom FILE]           `bpd self-test` (core.selftest)

Frozen, the same executable is also every child that multiprocessing starts (a fold's
worker process, an image-decoding process, their resource tracker), so
`multiprocessing.freeze_support()` runs before any argument is read: it turns such a
start into that child and exits. Nothing heavy is imported before the mode is known:
the app's own process never loads torch, the command line never loads Qt.
"""

from __future__ import annotations

import sys

CLI_FLAG = "--cli"
SELF_TEST_FLAG = "--self-test"
HELP = """usage: bpd-studio [app options]              the desktop app
       bpd-studio COMMAND ...                   the `bpd` command line (--cli --help)
       bpd-studio --cli [-v] COMMAND ...        the same (how the app starts its jobs)
       bpd-studio --self-test [--dicom FILE]    check this installation, offline
"""


def main(argv: list[str] | None = None) -> int:
    import multiprocessing

    multiprocessing.freeze_support()  # frozen: a multiprocessing child runs here, then exits
    mode, args = choose_mode(list(sys.argv[1:] if argv is None else argv))
    if mode == "unknown":
        print(f"bpd-studio: {args[0]!r} is not a command; commands: "
              f"{', '.join(cli_commands())} (bpd-studio --help)", file=sys.stderr)  # fmt: skip
        return 2
    if mode == "help":
        from bpd_gui.main import build_parser  # argparse only: no Qt yet

        parser = build_parser()
        parser.prog = "bpd-studio"
        print(HELP)
        parser.print_help()
        return 0
    if mode == "gui":
        from bpd_gui.main import main as gui_main

        return gui_main(args)
    from core.cli.main import main as cli_main

    return cli_main(args)


def choose_mode(args: list[str]) -> tuple[str, list[str]]:
    """("gui" | "cli" | "help" | "unknown", the arguments that mode's parser gets)."""
    if not args:
        return "gui", []
    first = args[0]
    if first == CLI_FLAG:
        return "cli", args[1:]
    if first == SELF_TEST_FLAG:
        return "cli", ["self-test", *args[1:]]
    if first in ("-h", "--help"):
        return "help", []
    if first == "--version":
        return "cli", args
    # Only a bare word can be a command (the app takes none); the list is built (command
    # modules imported) only then, so the app starts without it.
    if not first.startswith("-"):
        return ("cli" if first in cli_commands() else "unknown"), args
    return "gui", args


def cli_commands() -> tuple[str, ...]:
    """The `bpd` subcommands, as core's parser defines them."""
    from core.cli.main import command_names

    return command_names()


if __name__ == "__main__":
    sys.exit(main())
