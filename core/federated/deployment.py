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

import contextlib
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
# The run folder the ServerApp writes to, in the SuperLink's environment (its ServerApp
# process inherits it); in the run config every site would see the server's path
OUT_ENV = "BPD_FEDERATION_OUT"
# How often Flower's own status of the run is asked: only a fallback for a ServerApp
# that died without writing its status (federation.json says when a run ends), and each
# `flwr ls` is a process that takes CPU seconds from the sites' training
STATUS_EVERY_S = 60.0
STOP_GRACE_S = 10.0  # SIGTERM, then this long for the Flower processes, then SIGKILL


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
    # Flower's SuperExec looks for new tasks (a ClientApp or ServerApp to start) once a
    # second by default; every message waits for that, so ask more often
    env.setdefault("FLWR_SUPEREXEC_TASK_POLL_INTERVAL", "0.2")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def node_config(site_dir: Path, threads: int = 0) -> str:
    """A SuperNode's --node-config: where the site's own folder is (read only by the
    site's ClientApp; node config never leaves the SuperNode)."""
    return f'site-dir="{site_dir}"' + (f" threads={threads}" if threads else "")


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


class FlowerProcesses:
    """Flower processes this command started, each in its own process group, with their
    logs and a private FLWR_HOME; all ended (and the home removed) on exit."""

    def __init__(self) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="bpd-flower-"))
        self.env = flower_env(self.home)
        self.procs: dict[str, subprocess.Popen] = {}

    def __enter__(self):
        return self

    def write_connection(self, address: str, root_certificates: Path | None) -> None:
        """The `flwr` CLI's connection to our SuperLink (Flower's config.toml)."""
        tls = (
            f'root-certificates = "{root_certificates}"' if root_certificates else "insecure = true"
        )
        (self.home / "config.toml").write_text(
            f'[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\n'
            f'address = "{address}"\n{tls}\n',
            encoding="utf-8",
        )

    def flwr(self, *args: str) -> str:
        """A `flwr` CLI command against our SuperLink; its output, or a RunError."""
        res = subprocess.run(
            ["flwr", *args], env=self.env, cwd=self.home, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        if res.returncode != 0:
            raise RunError(f"flwr {' '.join(args)} failed: {(res.stdout + res.stderr)[-800:]}")
        return res.stdout

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.home / f"{name}.log", "wb")  # noqa: SIM115 - the child owns it
        # its own process group (start_new_session): stop() ends its children too
        self.procs[name] = subprocess.Popen(
            argv,
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.home,
            start_new_session=True,
        )
        log.close()

    def _wait_listening(
        self, port: int, name: str, timeout_s: float = 60.0, host: str = "127.0.0.1"
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._check_alive()
            with socket.socket() as s:
                if s.connect_ex((host, port)) == 0:
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
        """`flwr run` the app, follow the ServerApp's log, and wait until is_done() or
        Flower reports the run finished (the log stream alone can break on a busy
        machine, so the run's status decides). Returns the ServerApp's log."""
        app_dir = write_app(self.home / "app", run_config)
        started = self.flwr("run", str(app_dir), CONNECTION, "--format", "json")
        run_id = str(_json_object(started).get("run-id") or "")
        if not run_id:
            raise RunError(f"flwr run did not start a run: {started[-500:]}")
        out_path = self.home / "serverapp.log"
        with open(out_path, "wb") as out:
            follower = subprocess.Popen(
                ["flwr", "log", run_id, CONNECTION, "--stream"], env=self.env, stdout=out,
                stderr=subprocess.STDOUT, cwd=self.home, start_new_session=True,
            )  # fmt: skip
            deadline = time.monotonic() + timeout_s
            next_status = time.monotonic() + STATUS_EVERY_S
            try:
                while not is_done():
                    self._check_alive()
                    if on_wait:
                        on_wait()
                    if time.monotonic() > deadline:
                        raise RunError(f"the federated run took longer than {timeout_s:.0f} s")
                    if time.monotonic() > next_status:
                        if self.run_status(run_id) == "finished":
                            time.sleep(2.0)  # the ServerApp's last write is already on disk
                            break
                        next_status = time.monotonic() + STATUS_EVERY_S
                    time.sleep(0.5)
            finally:
                _end_group(follower)
        return out_path.read_text(encoding="utf-8", errors="replace")

    def run_status(self, run_id: str) -> str:
        """Flower's status of a run (pending, starting, running, finished...)."""
        listing = _json_object(self.flwr("ls", CONNECTION, "--run-id", run_id, "--format", "json"))
        for run in listing.get("runs", []):
            if str(run.get("run-id")) == run_id:
                return str(run.get("status", "")).split(":")[0].strip().lower()
        return ""

    def stop(self) -> None:
        # SIGTERM to every group first, then wait for them together: the SuperNodes and
        # the SuperLink shut down side by side, not one grace period after another
        procs = list(self.procs.values())
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for p in procs:
            _end_group(p, grace_s=max(0.5, deadline - time.monotonic()))
        self.procs.clear()
        shutil.rmtree(self.home, ignore_errors=True)


class LocalFederation(FlowerProcesses):
    """SuperLink + one SuperNode per site on 127.0.0.1, without TLS (loopback only)."""

    def __init__(self, site_dirs: dict[str, Path], server_out: Path, threads_per_site: int = 0):
        super().__init__()
        self.server_out = server_out
        self.site_dirs = site_dirs
        self.threads = threads_per_site
        self.port = free_port()

    def __enter__(self) -> LocalFederation:
        self.write_connection(f"127.0.0.1:{self.port}", None)
        self._start(
            "superlink",
            ["flower-superlink", "--insecure", "--host", "127.0.0.1", "--port", str(self.port),
             "--disable-runtime-dependency-installation"],
            env={OUT_ENV: str(self.server_out)},
        )  # fmt: skip
        self._wait_listening(self.port, "superlink")
        for name, site_dir in self.site_dirs.items():
            self._start(
                f"supernode-{name}",
                ["flower-supernode", "--insecure", "--superlink", f"127.0.0.1:{self.port}",
                 "--port", str(free_port()),
                 "--node-config", node_config(site_dir, self.threads)],
            )  # fmt: skip
        return self


def _end_group(p: subprocess.Popen, grace_s: float = STOP_GRACE_S) -> None:
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


def _json_object(text: str) -> dict[str, Any]:
    """The JSON object a `flwr ... --format json` command printed (after any notes)."""
    start = text.find("{")
    try:
        data = json.loads(text[start:]) if start >= 0 else {}
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}
