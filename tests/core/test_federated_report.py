"""A federated run's results read back (core.federated.record) and `bpd report` of it.

`write_federated_run` builds a finished three-site simulation's run folder through
RunFolder's writers with what `bpd federate simulate` writes: the server's record
(rounds, every reply's manifest, the sites' per-fold scores), the summary with the
comparison table made by core.federated.results from those scores, and the federated
model's out-of-fold predictions. The GUI test of the federated view uses it too.
"""

from __future__ import annotations

import html
import re

import numpy as np
import pytest

from core.cli.main import main
from core.errors import InputError
from core.federated.record import read_federated
from core.federated.results import arms_from_scores, comparison_table
from core.runs.folder import RunFolder
from core.scoring.metrics import auroc, binary_metrics, summarize_folds

SITES = {"north": (12, 5), "middle": (8, 4), "south": (6, 3)}  # patients, positive
N_FOLDS = 2
# the exchanged weights of a round in which head and layer4 train (ResNet-50 shapes)
HEAD = {"head.1.weight": [1, 2048], "head.1.bias": [1]}
LAYER4 = {
    "backbone.layer4.0.conv1.weight": [512, 1024, 1, 1],
    "backbone.layer4.0.conv2.weight": [512, 512, 3, 3],
    "backbone.layer4.0.downsample.0.weight": [2048, 1024, 1, 1],
}


def _scores(rng: np.random.Generator, site: str, n: int, pos: int) -> list[dict]:
    """Per fold: metrics of predictions on the fold's test patients (half the site)."""
    labels = np.array([1] * pos + [0] * (n - pos))
    folds = [labels[0::2], labels[1::2]]
    out = []
    for y in folds:
        prob = np.clip(0.35 * y + rng.uniform(0, 0.65, len(y)), 0, 1)
        m = binary_metrics(y, prob, 0.5)
        out.append({**m, "n-test": float(len(y)), "n-test-positive": float(y.sum())})
    return out


def write_federated_run(path, *, server: bool = False, finished: bool = True) -> RunFolder:
    """`server`: as `bpd federate serve` writes it (no site-alone, pooled or predictions);
    not `finished`: while it federates (rounds so far, no summary yet)."""
    rng_seed = 7
    rng = np.random.default_rng(rng_seed)
    counts = {
        s: {"n-patients": n, "n-positive": p, "n-folds": N_FOLDS} for s, (n, p) in SITES.items()
    }
    scores: dict[str, dict[str, dict]] = {}
    local, pooled = {}, {}
    for site, (n, pos) in SITES.items():
        fed = _scores(rng, site, n, pos)
        loso = _scores(rng, site, n, pos)
        scores[site] = {f"fed-f{k}": m for k, m in enumerate(fed)}
        scores[site].update({f"loso-{site}-f{k}": m for k, m in enumerate(loso)})
        local[site] = _scores(rng, site, n, pos)
        pooled[site] = _scores(rng, site, n, pos)
    arms = arms_from_scores(scores, N_FOLDS)
    if not server:
        arms.update(local=local, pooled=pooled)
    table = comparison_table(arms, counts)
    rounds = [
        {"round": 1, "phase": "probe", "trainable": ["head"],
         "train_loss": {"fed-f0": 0.69, "fed-f1": 0.71}, "seconds": 21.4},
        {"round": 2, "phase": "layer4", "trainable": ["head", "layer4"],
         "train_loss": {"fed-f0": 0.62, "fed-f1": 0.66}, "seconds": 48.9},
    ]  # fmt: skip
    received = []
    for node, site in enumerate(SITES, start=1):
        received.append({"kind": "describe", "round": None, "node": node, "arrays": {},
                         "metrics": {"counts": counts[site]},
                         "configs": {"site": {"name": site}}})  # fmt: skip
    for r, shapes in ((1, HEAD), (2, {**HEAD, **LAYER4})):
        for node, site in enumerate(SITES, start=1):
            arrays = {f"fed-f{k}": {n: ["float32", s] for n, s in shapes.items()} for k in (0, 1)}
            metrics = {f"fed-f{k}.metrics": {"num-patients": SITES[site][0] // 2,
                                             "train-loss": 0.7} for k in (0, 1)}  # fmt: skip
            received.append({"kind": "train", "round": r, "node": node, "arrays": arrays,
                             "metrics": metrics, "configs": {}})  # fmt: skip
    for node, site in enumerate(SITES, start=1):
        received.append({"kind": "evaluate", "round": None, "node": node, "arrays": {},
                         "metrics": scores[site], "configs": {}})  # fmt: skip
    config = {
        "train": {"init": "random", "resolution": 64, "cv_folds": N_FOLDS, "cv_repeats": 1},
        "federated": {
            "sites": [{"name": s, "cohort_source": {"table": f"/sites/{s}.csv"}} for s in SITES],
            "rounds": 2, "probe_rounds": 1, "loso": True, "compare": ["local", "pooled"],
            "proximal_mu": 0.0, "runtime": "Flower deployment runtime on 127.0.0.1",
        },
        "seed": 42,
        "created": "2026-11-29T19:00:00+00:00",
    }  # fmt: skip
    if server:
        config["federated"].update(role="server", address="0.0.0.0:8000", compare=[])
    run = RunFolder.create(path, config, {"sites": {}})
    run.write_federation(
        {"strategy": "FedAvg", "proximal_mu": 0.0, "weighted_by": "training patients",
         "sites": counts, "jobs": {}, "rounds": rounds, "scores": scores if finished else {},
         "received": received, "timeline": [], "status": "finished" if finished else "running",
         "seconds": 95.3}
    )  # fmt: skip
    if not finished:
        return run
    rows = []
    for site, (n, pos) in SITES.items():
        for i in range(n):
            p = float(np.clip(0.4 * (i < pos) + rng.uniform(0, 0.6), 0, 1))
            rows.append({"patient_id": f"{site}:P{i:03d}", "label": int(i < pos), "prob": p,
                         "n_repeats": 1, "prob_r0": p})  # fmt: skip
    if not server:  # the server never sees predictions
        run.write_predictions(rows, ["patient_id", "label", "prob", "n_repeats", "prob_r0"])
    fed_folds = [m for s in SITES for m in arms["federated"][s]]
    labels = np.array([r["label"] for r in rows])
    summary = dict(summarize_folds(fed_folds))
    summary.update(
        {"pooled_auroc": None if server else auroc(labels, np.array([r["prob"] for r in rows])),
         "n_patients": sum(n for n, _ in SITES.values()),
         "n_positive": sum(p for _, p in SITES.values()), "n_folds": len(fed_folds),
         "federated": {"table": table, "strategy": "FedAvg", "proximal_mu": 0.0, "rounds": 2,
                       "folds_per_site": N_FOLDS, "sites": counts, "seconds": 95.3}}
    )  # fmt: skip
    run.write_summary(summary)
    run.write_state("finished")
    return run


def test_read_federated_gives_the_table_the_rounds_and_the_traffic(tmp_path):
    run = write_federated_run(tmp_path / "fed")
    r = read_federated(RunFolder.existing(run.path))
    assert r.role == "simulation" and r.status == "finished" and r.strategy == "FedAvg"
    assert r.sites == ("north", "middle", "south") and r.folds_per_site == 2
    assert r.arms == ("federated", "loso", "local", "pooled")
    assert [row.site for row in r.rows] == ["north", "middle", "south", "all sites"]
    every = r.rows[-1]
    assert every.n_patients == 26 and every.value("federated")["n"] == 6
    assert [x.phase for x in r.rounds] == ["probe", "layer4"]
    assert abs(r.rounds[1].train_loss - 0.64) < 1e-9
    kinds = {t.kind: t for t in r.traffic}
    assert kinds["describe"].arrays == 0 and kinds["describe"].texts == ("name",)
    # round 1: head (2049 values) x 2 trainings x 3 sites; round 2 adds layer4's three
    per_training = 2049 + 512 * 1024 + 512 * 512 * 9 + 2048 * 1024
    assert kinds["train"].values == 6 * 2049 + 6 * per_training
    assert abs(kinds["train"].megabytes - kinds["train"].values * 4 / 1e6) < 1e-9
    assert "auroc" in kinds["evaluate"].numbers and kinds["evaluate"].arrays == 0


def test_bpd_report_of_a_federated_run_has_the_per_site_table(tmp_path, capsys):
    run = write_federated_run(tmp_path / "fed")
    assert main(["report", str(run.path)]) == 0
    page = run.report_path.read_text(encoding="utf-8")
    text = html.unescape(re.sub(r"<[^>]+>", " ", page))
    for title in ("federated (FedBN)", "left out, BN re-estimated", "site alone", "pooled images"):
        assert title in text
    north = read_federated(run).rows[0].value("loso")
    assert f"{north['mean']:.3f} ± {north['sd']:.3f}" in text  # the table's own numbers
    assert "backbone.layer4.0.downsample.0.weight" in text  # what was sent, by name
    assert "north:P000" in text  # the federated model's out-of-fold predictions
    # `bpd compare` and RunFolder.run_config() say what the run is instead of failing oddly
    assert main(["compare", str(run.path), str(run.path)]) == 2
    assert "federated run" in capsys.readouterr().err
    with pytest.raises(InputError, match="federated run"):
        run.run_config()


def test_report_of_a_server_run_while_it_federates_shows_its_rounds(tmp_path):
    """`bpd federate serve` while it runs: rounds and traffic, no table yet; finished:
    the federated and left-out-site columns only (the others need the images)."""
    run = write_federated_run(tmp_path / "busy", server=True, finished=False)
    r = read_federated(run)
    assert r.role == "server" and r.rows == () and len(r.rounds) == 2
    assert main(["report", str(run.path)]) == 0
    assert "has not finished" in run.report_path.read_text(encoding="utf-8")
    done = read_federated(write_federated_run(tmp_path / "done", server=True))
    assert done.arms == ("federated", "loso") and done.pooled_auroc is None
