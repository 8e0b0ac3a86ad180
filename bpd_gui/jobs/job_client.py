"""The one place that knows how a job process is started, stopped and recognised.

Jobs run as detached child processes (`python -m core.cli.main ...`, or the frozen
app's own executable in CLI mode: `bpd-studio --cli ...`), with stdout and stderr sent
to log files, so that the app can quit while a run goes on and reattach later by the pid
the run records in its state (core.runs.folder.RunFolder).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import QProcessEnvironment

from core import paths
from core.errors import InputError
from core.runs.folder import RunFolder
from core.selftest import child_environment, cli_command


def base_command() -> list[str]:
    """Program + leading arguments that run the `bpd` command line: the frozen app's
    executable with --cli (bpd_gui.launcher), else this interpreter with -m. One owner,
    core.selftest.cli_command, so `bpd-studio --self-test` starts its child as jobs start."""
    return cli_command()


def repo_root() -> Path:
    # `python -m core.cli.main` needs the folder that holds `core` on sys.path.
    return Path(__file__).resolve().parents[2]


def logs_dir() -> Path:
    return paths.studio_home() / "gui-logs"


def stderr_log(run_dir: Path) -> Path:
    return logs_dir() / f"{Path(run_dir).name}.stderr.log"


def stdout_log(run_dir: Path) -> Path:
    return logs_dir() / f"{Path(run_dir).name}.stdout.log"


def run_config_file(run_dir: Path) -> Path:
    """Where the app writes the RunConfig a new run starts from (beside its logs)."""
    return logs_dir() / f"{Path(run_dir).name}.run-config.json"


def train_arguments(config_file: Path, run_dir: Path) -> list[str]:
    """`bpd train --config FILE`: the RunConfig holds the recipe, the cohort and the
    options. --quiet: no progress bar in the stderr log, so its tail shows only what
    went wrong."""
    return ["train", "--config", str(config_file), "--out", str(run_dir), "--quiet"]


def resume_arguments(run_dir: Path) -> list[str]:
    return ["resume", str(run_dir), "--quiet"]


def bench_arguments(resolution: int, batch_size: int, steps: int) -> list[str]:
    return [
        "bench", "train", "--resolution", str(resolution),
        "--batch-size", str(batch_size), "--steps", str(steps),
    ]  # fmt: skip


def job_environment() -> QProcessEnvironment:
    env = QProcessEnvironment()
    for key, value in job_environment_dict().items():
        env.insert(key, value)
    return env


def job_environment_dict() -> dict[str, str]:
    """This process's environment, with `core` importable from source and the frozen
    executable started as an instance of its own (core.selftest.child_environment)."""
    return child_environment()


def start_detached(arguments: list[str], run_dir: Path) -> subprocess.Popen:
    """Start `bpd ARGUMENTS` in its own session, so it outlives the app if the user wants.

    Raises OSError if it cannot start. (QProcess.startDetached cannot report the pid in
    PySide6, and a QProcess-owned child dies with the app, hence Popen.)
    """
    logs_dir().mkdir(parents=True, exist_ok=True)
    extra: dict = {}
    if sys.platform == "win32":  # pragma: no cover
        extra["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
    else:
        extra["start_new_session"] = True
    with (
        open(stdout_log(run_dir), "ab") as out,
        open(stderr_log(run_dir), "ab") as err,
    ):
        return subprocess.Popen(
            [*base_command(), *arguments],
            cwd=str(repo_root()),
            env=job_environment_dict(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            **extra,
        )


def pid_alive(pid: int | None) -> bool:
    if not pid or pid <= 0:
        return False
    if sys.platform == "win32":  # pragma: no cover - no os.kill(pid, 0) semantics there
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)
        if not handle:
            return False
        code = ctypes.c_ulong()
        ctypes.windll.kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        ctypes.windll.kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _not_zombie(pid)


def _not_zombie(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split(")")[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


JOB_MARKERS = ("core.cli", "bpd", "train", "resume")


def looks_like_job(pid: int) -> bool:
    """A live pid from a run's state may have been reused by an unrelated program after a
    reboot; where /proc says what it runs, it must be a `bpd` job."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return True  # no /proc (macOS, Windows): trust the pid
    return any(marker in cmdline for marker in JOB_MARKERS)


def request_stop(pid: int) -> None:
    """Ask the job to stop after the current batch (the CLI handles SIGTERM; resumable)."""
    if pid_alive(pid):
        os.kill(pid, signal.SIGTERM)


def read_state(run_dir: Path) -> dict:
    """The run's recorded state ({status, pid, updated, error}); {} if it has none or
    cannot be read (the app shows what the event stream says instead)."""
    try:
        return RunFolder(run_dir).state()
    except (OSError, InputError):
        return {}


def read_summary(run_dir: Path) -> dict | None:
    """The finished run's summary, None until there is a readable one."""
    try:
        return RunFolder(run_dir).summary()
    except (OSError, InputError):
        return None


def stderr_tail(run_dir: Path, max_chars: int = 4000) -> str:
    try:
        text = stderr_log(run_dir).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return text[-max_chars:].strip()
