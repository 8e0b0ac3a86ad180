"""`bpd federate serve` and `bpd federate join` on loopback: a SuperLink with TLS and
SuperNode authentication, two sites with registered keys, one real round."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from core.runs.folder import RunFolder
from core.training.config import TrainConfig
from tests.core.test_federated import DEMO, _split_demo

pytest.importorskip("flwr")


def _credentials(folder: Path, sites: list[str]) -> None:
    """TEST DATA: a CA, a server certificate for 127.0.0.1, one EC key pair per site."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True)
    now = dt.datetime.now(dt.UTC)
    pem = serialization.Encoding.PEM

    def cert(subject, issuer, key, signer, ca: bool):
        b = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
        )
        if ca:
            b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        else:
            san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return b.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP384R1()), ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    server = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    (folder / "ca.crt").write_bytes(cert(ca_name, ca_name, ca_key, ca_key, True).public_bytes(pem))
    (folder / "server.pem").write_bytes(cert(server, ca_name, key, ca_key, False).public_bytes(pem))
    raw = serialization.PrivateFormat.TraditionalOpenSSL
    (folder / "server.key").write_bytes(key.private_bytes(pem, raw, serialization.NoEncryption()))
    for s in sites:
        k = ec.generate_private_key(ec.SECP384R1())
        ssh = serialization.PrivateFormat.OpenSSH
        (folder / s).write_bytes(k.private_bytes(pem, ssh, serialization.NoEncryption()))
        public = k.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        (folder / f"{s}.pub").write_bytes(public)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_serve_and_two_joins_with_tls_and_node_authentication(tmp_path):
    tables = _split_demo(tmp_path, {"north": (5, 4), "south": (5, 4)})
    certs = tmp_path / "certs"
    _credentials(certs, ["north", "south"])
    cfg = TrainConfig(init="random", resolution=32, strategy="probe", probe_epochs=1,
                      batch_size=8, cv_folds=2, cv_repeats=1)  # fmt: skip
    (tmp_path / "cfg.json").write_text(json.dumps(cfg.to_json()), encoding="utf-8")
    env = {**os.environ, "BPD_STUDIO_HOME": str(tmp_path / "home")}
    bpd = [sys.executable, "-m", "core.cli.main", "federate"]
    port = _port()
    serve = subprocess.Popen(
        [*bpd, "serve", "--certs", str(certs), "--site-key", str(certs / "north.pub"),
         "--site-key", str(certs / "south.pub"), "--host", "127.0.0.1", "--port", str(port),
         "--config", str(tmp_path / "cfg.json"), "--no-loso", "--out", str(tmp_path / "run")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    joins = [
        subprocess.Popen(
            [
                *bpd,
                "join",
                str(tables[s]),
                "--site",
                s,
                "--server",
                f"127.0.0.1:{port}",
                "--ca-cert",
                str(certs / "ca.crt"),
                "--site-key",
                str(certs / s),
                "--images-root",
                str(DEMO),
                "--outcome",
                "diagnosis",
                "--positive",
                "PNEUMONIA",
                "--negative",
                "NORMAL",
                "--work-dir",
                str(tmp_path / f"site-{s}"),
                "--runtime-port",
                str(_port()),
                "--threads",
                "1",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for s in ("north", "south")
    ]
    try:
        out, _ = serve.communicate(timeout=900)
    finally:
        for j in joins:
            j.send_signal(signal.SIGTERM)
        join_out = [j.communicate(timeout=120)[0] for j in joins]
        if serve.poll() is None:
            serve.kill()
    assert serve.returncode == 0, out + "\n".join(join_out)
    assert all(j.returncode == 0 for j in joins), join_out

    run = RunFolder.existing(tmp_path / "run")
    record = run.federation()
    assert record["status"] == "finished" and set(record["sites"]) == {"north", "south"}
    names = {n for e in record["received"] for arrays in e["arrays"].values() for n in arrays}
    assert names == {"head.1.weight", "head.1.bias"}  # a probe round sends only the head
    summary = run.summary()
    assert summary["n_patients"] == 18 and summary["federated"]["folds_per_site"] == 2
    # each site's predictions stayed in its own folder
    assert RunFolder.existing(tmp_path / "site-north").fold("fed-f0").read_predictions()
