"""A federation on this machine through Flower's Deployment Runtime: one SuperLink and one
SuperNode per site, all on 127.0.0.1, then `flwr run` of the BPD Flower app.

Why not Flower's simulation engine: in flwr 1.42 it runs on Ray (`flwr[simulation]`,
a large download with its own process manager). The deployment runtime needs nothing
beyond flwr and is what real sites run (`flower-superlink` / `flower-supernode`), so a
simulation exercises the same messages, processes and serialisation as a deployment;
only TLS and node authentication are off, because nothing leaves the loopback interface.

The Flower processes get their own FLWR_HOME (a temporary folder: the connection config,
installed app bundles, logs), no update check and no telemetry.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import RunError

APP_NAME = "bpd-federated"
CONNECTION = "bpd-local"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def flower_env(home: Path) -> dict[str, str]:
    """The environment of every Flower process: this interpreter's scripts first, this
    checkout importable (the app's components live in core.federated), offline."""
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    project_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = project_root + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    env["FLWR_HOME"] = str(home)
    env["FLWR_DISABLE_UPDATE_CHECK"] = "1"
    env["FLWR_TELEMETRY_ENABLED"] = "0"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def write_app(folder: Path, run_config: dict[str, Any]) -> Path:
    """The Flower app bundle's project: only a pyproject.toml naming core.federated's
    ServerApp and ClientApp, and the run config every site receives."""
    import tomli_w

    folder.mkdir(parents=True, exist_ok=True)
    project = {
        "project": {
            "name": APP_NAME,
            "version": "1.0.0",
            "description": "BPD Studio federated fine-tuning",
            "license": "MIT",
            "dependencies": [],
        },
        "tool": {
            "flwr": {
                "app": {
                    "publisher": "bpd-studio",
                    "components": {
                        "serverapp": "core.federated.server_app:app",
                        "clientapp": "core.federated.client_app:app",
                    },
                    "config": run_config,
                }
            }
        },
    }
    (folder / "pyproject.toml").write_text(tomli_w.dumps(project), encoding="utf-8")
    return folder


class LocalFederation:
    """SuperLink + SuperNodes on loopback; stopped (process groups ended) on exit."""

    def __init__(self, site_dirs: dict[str, Path], threads_per_site: int = 0):
        self.site_dirs = site_dirs
        self.threads = threads_per_site
        self.home = Path(tempfile.mkdtemp(prefix="bpd-flower-"))
        self.env = flower_env(self.home)
        self.port = free_port()
        self.procs: dict[str, subprocess.Popen] = {}

    def __enter__(self) -> LocalFederation:
        (self.home / "config.toml").write_text(
            f'[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\n'
            f'address = "127.0.0.1:{self.port}"\ninsecure = true\n',
            encoding="utf-8",
        )
        self._start(
            "superlink",
            ["flower-superlink", "--insecure", "--host", "127.0.0.1", "--port", str(self.port),
             "--disable-runtime-dependency-installation"],
        )  # fmt: skip
        self._wait_listening(self.port, "superlink")
        for name, site_dir in self.site_dirs.items():
            node_config = f'site-dir="{site_dir}"' + (
                f" threads={self.threads}" if self.threads else ""
            )
            self._start(
                f"supernode-{name}",
                ["flower-supernode", "--insecure", "--superlink", f"127.0.0.1:{self.port}",
                 "--port", str(free_port()), "--node-config", node_config],
            )  # fmt: skip
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _start(self, name: str, argv: list[str]) -> None:
        log = open(self.home / f"{name}.log", "wb")  # noqa: SIM115 - the child owns it
        self.procs[name] = subprocess.Popen(
            argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.home,
            start_new_session=True,  # its own process group: stop() ends its children too
        )  # fmt: skip
        log.close()

    def _wait_listening(self, port: int, name: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._check_alive()
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.2)
        raise RunError(
            f"Flower {name} did not start within {timeout_s:.0f} s: {self.log_tail(name)}"
        )

    def _check_alive(self) -> None:
        for name, p in self.procs.items():
            if p.poll() is not None:
                raise RunError(
                    f"Flower {name} exited with code {p.returncode}: {self.log_tail(name)}"
                )

    def log_tail(self, name: str, n: int = 15) -> str:
        path = self.home / f"{name}.log"
        if not path.is_file():
            return "(no log)"
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(lines[-n:])

    def run_app(
        self,
        run_config: dict[str, Any],
        is_done: Callable[[], bool],
        on_wait: Callable[[], None] | None = None,
        timeout_s: float = 24 * 3600.0,
    ) -> str:
        """`flwr run` the app; wait until is_done() or the run's log stream ends.
        Returns the ServerApp's log."""
        app_dir = write_app(self.home / "app", run_config)
        argv = ["flwr", "run", str(app_dir), CONNECTION, "--stream"]
        out_path = self.home / "serverapp.log"
        with open(out_path, "wb") as out:
            runner = subprocess.Popen(
                argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=self.home,
                start_new_session=True,
            )  # fmt: skip
            deadline = time.monotonic() + timeout_s
            try:
                while runner.poll() is None and not is_done():
                    self._check_alive()
                    if on_wait:
                        on_wait()
                    if time.monotonic() > deadline:
                        raise RunError(f"the federated run took longer than {timeout_s:.0f} s")
                    time.sleep(0.5)
            finally:
                if runner.poll() is None:
                    _end_group(runner)
        return out_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        for p in self.procs.values():
            _end_group(p)
        self.procs.clear()
        shutil.rmtree(self.home, ignore_errors=True)


def _end_group(p: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM to the process group we started (the child and what it launched), then
    SIGKILL if it lingers."""
    try:
        os.killpg(p.pid, signal.SIGTERM)  # also when the leader is gone: its children
        p.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=grace_s)
    except ProcessLookupError:
        pass


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))
