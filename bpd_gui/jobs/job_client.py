"""The one place that knows how a job process is started, stopped and recognised.

Jobs run as detached child processes (`python -m core.cli.main ...`), with stdout and
stderr sent to log files, so that the app can quit while a run goes on and reattach
later by the pid in state.json. A frozen app swaps `base_command()` for its own
executable in worker mode.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QProcessEnvironment

from core import paths


def base_command() -> list[str]:
    """Program + leading arguments that run the `bpd` command line."""
    return [sys.executable, "-m", "core.cli.main"]


def repo_root() -> Path:
    # `python -m core.cli.main` needs the folder that holds `core` on sys.path.
    return Path(__file__).resolve().parents[2]


def logs_dir() -> Path:
    return paths.studio_home() / "gui-logs"


def stderr_log(run_dir: Path) -> Path:
    return logs_dir() / f"{Path(run_dir).name}.stderr.log"


def stdout_log(run_dir: Path) -> Path:
    return logs_dir() / f"{Path(run_dir).name}.stdout.log"


@dataclass(frozen=True)
class TrainRequest:
    """Everything the Train view's form and the cohort say about one run."""

    table: str
    outcome: str
    positive: tuple[str, ...]
    negative: tuple[str, ...] = ()
    negative_rest: bool = False  # every other recorded value negative (--negative-rest)
    images_root: str | None = None
    patient_col: str | None = None
    image_col: str | None = None
    preset: str | None = None
    init: str | None = None
    strategy: str | None = None
    cutmix: bool | None = None
    folds: int | None = None
    repeats: int | None = None
    epochs: int | None = None
    resolution: int | None = None
    batch_size: int | None = None
    device: str | None = None

    def to_json(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_json(cls, data: dict) -> TrainRequest:
        data = dict(data)
        for key in ("positive", "negative"):
            data[key] = tuple(data.get(key) or ())
        return cls(**data)


def train_arguments(req: TrainRequest, run_dir: Path) -> list[str]:
    args = ["train", req.table, "--outcome", req.outcome, "--positive", *req.positive]
    if req.negative:
        args += ["--negative", *req.negative]
    if req.negative_rest:
        args.append("--negative-rest")
    for flag, value in (
        ("--images-root", req.images_root),
        ("--patient-col", req.patient_col),
        ("--image-col", req.image_col),
        ("--preset", req.preset),
        ("--init", req.init),
        ("--strategy", req.strategy),
        ("--folds", req.folds),
        ("--repeats", req.repeats),
        ("--epochs", req.epochs),
        ("--resolution", req.resolution),
        ("--batch-size", req.batch_size),
        ("--device", req.device),
    ):
        if value is not None and value != "":
            args += [flag, str(value)]
    if req.cutmix is not None:
        args.append("--cutmix" if req.cutmix else "--no-cutmix")
    # --quiet: no progress bar in the stderr log, so its tail shows only what went wrong
    return [*args, "--out", str(run_dir), "--quiet"]


def resume_arguments(run_dir: Path) -> list[str]:
    return ["resume", str(run_dir), "--quiet"]


def bench_arguments(resolution: int, batch_size: int, steps: int) -> list[str]:
    return [
        "bench", "train", "--resolution", str(resolution),
        "--batch-size", str(batch_size), "--steps", str(steps),
    ]  # fmt: skip


def job_environment() -> QProcessEnvironment:
    env = QProcessEnvironment.systemEnvironment()
    root = str(repo_root())
    old = env.value("PYTHONPATH", "")
    env.insert("PYTHONPATH", root + (os.pathsep + old if old else ""))
    env.insert("PYTHONUNBUFFERED", "1")
    return env


def job_environment_dict() -> dict[str, str]:
    env = dict(os.environ)
    root = str(repo_root())
    old = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = root + (os.pathsep + old if old else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


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
    """A live pid from state.json may have been reused by an unrelated program after a
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
    try:
        return json.loads((Path(run_dir) / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def read_summary(run_dir: Path) -> dict | None:
    try:
        data = json.loads((Path(run_dir) / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def stderr_tail(run_dir: Path, max_chars: int = 4000) -> str:
    try:
        text = stderr_log(run_dir).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return text[-max_chars:].strip()
