"""Real sites: `bpd federate serve` (a SuperLink with TLS and node authentication, then
the federated run) and `bpd federate join` (a site's SuperNode).

The coordinator holds the CA-signed server certificate and the sites' public keys; a
site holds the CA certificate, its own private key and its cohort. Sites connect out to
the server's one HTTPS port; nothing connects into a site. The run folder the server
writes has what the server knows: rounds, what it received, and the sites' per-fold
scores (federated and left-out-site columns; site-alone and pooled need the images).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.cohort.source import CohortSource
from core.errors import InputError, RunError
from core.federated import require_flwr
from core.federated.deployment import OUT_ENV, FlowerProcesses, node_config
from core.federated.results import arms_from_scores, write_federated_summary
from core.federated.site import check_site_name, site_config
from core.runs.folder import RunFolder, now_iso, package_versions
from core.training.config import TrainConfig

Say = Callable[[str], None]
RETRY_S = 10.0  # a site whose SuperNode was refused tries again this often


@dataclass
class ServerCertificates:
    ca: Path  # the CA certificate the sites verify the server with (public)
    cert: Path  # the server's certificate, signed by the CA (SANs: its name or address)
    key: Path  # the server's private key

    @classmethod
    def from_folder(cls, folder: str | Path) -> ServerCertificates:
        folder = Path(folder)
        certs = cls(folder / "ca.crt", folder / "server.pem", folder / "server.key")
        for path in (certs.ca, certs.cert, certs.key):
            _need_file(path, "TLS file (expected ca.crt, server.pem and server.key)")
        return certs


def _need_file(path: Path, what: str) -> Path:
    if not Path(path).is_file():
        raise InputError(f"{what} not found", file=path)
    return Path(path)


def serve(
    cfg: TrainConfig,
    *,
    certs: ServerCertificates,
    site_keys: list[Path],
    out: Path,
    host: str = "0.0.0.0",
    port: int = 8000,
    loso: bool = True,
    proximal_mu: float = 0.0,
    wait_s: float = 3600.0,
    say: Say = lambda _m: None,
) -> dict[str, Any]:
    """Start the SuperLink, register the sites' keys, run the federation, write the run."""
    require_flwr()
    keys = [_need_file(Path(k), "site public key") for k in site_keys]
    if len(keys) < 2:
        raise InputError("a federation needs at least two sites (--site-key, twice or more)")
    config = {
        "train": cfg.to_json(),
        "federated": {
            "role": "server",
            "address": f"{host}:{port}",
            "site_keys": [k.name for k in keys],
            "rounds": cfg.total_epochs,
            "loso": loso,
            "proximal_mu": proximal_mu,
            "runtime": "Flower deployment runtime, TLS and SuperNode authentication",
        },
        "versions": package_versions(),
        "seed": cfg.seed,
        "created": now_iso(),
    }
    run = RunFolder.create(out, config, {"sites": {}})
    try:
        with run.lock():  # one process writes the run, as `bpd train` (core.runs.lock)
            summary = _serve(run, cfg, certs, keys, host, port, loso, proximal_mu, wait_s, say)
    except BaseException as exc:
        run.write_state("failed", error=f"{type(exc).__name__}: {exc}")
        raise
    run.write_state("finished")
    return summary


def _serve(run, cfg, certs, keys, host, port, loso, mu, wait_s, say) -> dict[str, Any]:
    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    with FlowerProcesses() as fl:
        fl.write_connection(f"{local}:{port}", certs.ca.resolve())
        fl._start(
            "superlink",
            ["flower-superlink", "--ssl-ca-certfile", str(certs.ca.resolve()),
             "--ssl-certfile", str(certs.cert.resolve()), "--ssl-keyfile", str(certs.key.resolve()),
             "--enable-supernode-auth", "--host", host, "--port", str(port),
             "--disable-runtime-dependency-installation"],
            env={OUT_ENV: str(run.path.resolve())},
        )  # fmt: skip
        fl._wait_listening(port, "superlink", host=local)
        for key in keys:
            fl.flwr("supernode", "register", str(key.resolve()))
            say(f"registered site key {key.name}")
        say(f"SuperLink on {host}:{port} (TLS); waiting for {len(keys)} sites")
        run_config = {
            "recipe": _json(cfg.to_json()),
            "n-sites": len(keys),
            "loso": bool(loso),
            "proximal-mu": float(mu),
            "wait-s": float(wait_s),
            "round-timeout-s": 6 * 3600.0,
        }
        seen = [0]

        def progress() -> None:
            record = _read(run)
            for r in record.get("rounds", [])[seen[0] :]:
                say(f"round {r['round']}/{cfg.total_epochs} ({r['phase']}) {r['seconds']:.0f} s")
            seen[0] = len(record.get("rounds", []))

        log = fl.run_app(
            run_config,
            is_done=lambda: _read(run).get("status") in ("finished", "failed"),
            on_wait=progress,
        )
    record = run.federation() or {}
    if record.get("status") != "finished":
        tail = "\n".join(log.splitlines()[-25:])
        raise RunError(f"the federated run did not finish ({record.get('error')}):\n{tail}")
    sites = record["sites"]
    n_folds = min(int(c["n-folds"]) for c in sites.values())
    arms = arms_from_scores(record["scores"], n_folds)
    # the server never sees predictions
    return write_federated_summary(run, record, arms, n_folds, pooled_auroc=None)


def _read(run: RunFolder) -> dict[str, Any]:
    try:
        return run.federation() or {}
    except InputError:  # being replaced this instant
        return {}


def join(
    name: str,
    source: CohortSource,
    *,
    server: str,
    ca_cert: Path,
    site_key: Path,
    work_dir: Path,
    threads: int = 0,
    runtime_port: int = 9094,
    say: Say = lambda _m: None,
    stop_after_s: float | None = None,
) -> int:
    """Prepare the site's folder (its cohort, checked and decoded here), then run its
    SuperNode until it is stopped (Ctrl-C) or, with stop_after_s, that long."""
    require_flwr()
    check_site_name(name)
    _need_file(ca_cert, "CA certificate")
    _need_file(site_key, "site private key")
    site_dir = _site_folder(name, source, Path(work_dir), say)
    argv = [
        "flower-supernode",
        *("--root-certificates", str(Path(ca_cert).resolve()), "--superlink", server),
        *("--auth-supernode-private-key", str(Path(site_key).resolve())),
        *("--port", str(runtime_port), "--node-config", node_config(site_dir.resolve(), threads)),
    ]
    deadline = None if stop_after_s is None else time.monotonic() + stop_after_s
    with FlowerProcesses() as fl:
        try:
            while deadline is None or time.monotonic() < deadline:
                proc = fl.procs.get("supernode")
                if proc is None or proc.poll() is not None:
                    if proc is not None:
                        # e.g. the server has not registered this site's key yet, or is
                        # not up: say why, and try again
                        tail = fl.log_tail("supernode", 6)
                        say(f"the SuperNode stopped; retrying in {RETRY_S:.0f} s:\n{tail}")
                        time.sleep(RETRY_S)
                    fl._start("supernode", argv)
                    say(f"site {name}: SuperNode started for {server}; Ctrl-C to leave")
                time.sleep(1.0)
        except KeyboardInterrupt:
            say("leaving the federation")
    return 0


def _site_folder(name: str, source: CohortSource, work_dir: Path, say: Say) -> Path:
    """The site's own folder (created once; a later join reuses it): its cohort source
    and cohort, read and decoded now so problems show before the federation starts."""
    from core.cohort.loader import load_source

    if RunFolder.looks_like_run(work_dir):
        # existing(), not open(): a ClientApp of this site may be writing it right now
        run = RunFolder.existing(work_dir)
        if run.config().get("site", {}).get("name") != name:
            raise InputError(f"this folder belongs to another site, not {name!r}", file=work_dir)
        busy = run.trainer()
        if busy is not None:  # the lock a ClientApp holds while it trains (core.runs.lock)
            raise InputError(
                f"another process (pid {busy.get('pid', '?')} on {busy.get('host', '?')}) is "
                "training this site's folder; is this site already joined?",
                file=work_dir,
            )
        return run.path
    config = site_config(name, 0, source, None)  # checks the outcome is named
    cohort = load_source(source)
    if not cohort.is_usable(min_per_class=2):
        raise InputError(
            f"site {name}: needs at least 2 usable patients of each outcome; it has "
            f"{cohort.n_positive} positive and {cohort.n_negative} negative",
            file=source.table,
        )
    index = int(hashlib.sha256(name.encode()).hexdigest(), 16) % 997  # its own RNG streams
    config["site"]["index"] = index
    RunFolder.create(work_dir, config, cohort.to_json())
    say(f"site {name}: {cohort.n_patients} patients ({cohort.n_positive} positive)")
    return work_dir


def _json(obj: Any) -> str:
    import json

    return json.dumps(obj, separators=(",", ":"))
