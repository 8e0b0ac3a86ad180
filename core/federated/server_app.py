"""The Flower ServerApp: rounds of every federated job, FedAvg/FedProx, final scoring.

It runs where the SuperLink runs and sees only what sites send: per job and round the
exchanged weights and the number of training patients, and at the end per-fold metrics.
Aggregation is Flower's own (FedAvg, or FedProx whose proximal term the sites add),
weighted by patients. Every reply is recorded in a manifest (names, dtypes, shapes,
numbers), written with the rounds and the sites' scores to the run folder's
federation record (RunFolder.write_federation).
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from flwr.app import ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg, FedProx

from core.errors import RunError
from core.federated.crops import NOT_SAID, crops_note
from core.federated.deployment import OUT_ENV
from core.federated.jobs import Job, plan_jobs
from core.federated.wire import from_record, manifest, to_record
from core.runs.folder import RunFolder
from core.training.config import TrainConfig
from core.training.plan import EpochPlan, fold_plan  # torch-free: the ServerApp loads no torch

log = logging.getLogger(__name__)
app = ServerApp()
WEIGHT_KEY = "num-patients"


@app.main()
def main(grid: Grid, context: Context) -> None:
    rc = context.run_config
    FederationServer(
        grid,
        recipe=json.loads(str(rc["recipe"])),
        n_sites=int(rc["n-sites"]),
        loso=bool(rc["loso"]),
        proximal_mu=float(rc["proximal-mu"]),
        out_dir=os.environ[OUT_ENV],
        wait_s=float(rc["wait-s"]),
        round_timeout_s=float(rc["round-timeout-s"]),
    ).run()


class FederationServer:
    def __init__(
        self,
        grid: Grid,
        *,
        recipe: dict[str, Any],
        n_sites: int,
        loso: bool,
        proximal_mu: float,
        out_dir: str,
        wait_s: float = 300.0,
        round_timeout_s: float = 3600.0,
    ):
        self.grid = grid
        self.cfg = TrainConfig.from_json(recipe)
        self.n_sites, self.loso = n_sites, loso
        self.mu = proximal_mu
        self.out = RunFolder(out_dir)
        self.wait_s, self.round_timeout_s = wait_s, round_timeout_s
        # Flower's strategies do the averaging; FedProx's term is added at the sites
        self.strategy = (
            FedProx(proximal_mu=proximal_mu, weighted_by_key=WEIGHT_KEY)
            if proximal_mu > 0
            else FedAvg(weighted_by_key=WEIGHT_KEY)
        )
        self.record: dict[str, Any] = {
            "strategy": type(self.strategy).__name__,
            "proximal_mu": proximal_mu,
            "weighted_by": "training patients",
            "sites": {},
            "jobs": {},
            "rounds": [],
            "scores": {},
            "received": [],
            "timeline": [],  # seconds each exchange took, sites' work and Flower's latency
        }

    # ----- the run -------------------------------------------------------------------------
    def run(self) -> None:
        t0 = time.monotonic()
        try:
            self._run(t0)
        except BaseException as exc:  # the orchestrator reads the status, not our stderr
            self.record["error"] = f"{type(exc).__name__}: {exc}"
            self._save(status="failed", seconds=time.monotonic() - t0)
            raise

    def _run(self, t0: float) -> None:
        nodes = self._wait_for_sites()
        sites = self._describe(nodes)  # name -> node id
        names = sorted(sites)
        n_folds = min(int(self.record["sites"][s]["n-folds"]) for s in names)
        jobs = plan_jobs(names, n_folds, self.loso)
        self.record["jobs"] = {j.name: list(j.participants) for j in jobs}
        plans = fold_plan(self.cfg)
        weights: dict[str, dict] = {j.name: {} for j in jobs}
        for r, plan in enumerate(plans):
            self._round(r, plan, sites, jobs, weights)
            self._save(status="running", seconds=time.monotonic() - t0)
        self._score(sites, jobs, weights)
        self._save(status="finished", seconds=time.monotonic() - t0)

    def _wait_for_sites(self) -> list[int]:
        deadline = time.monotonic() + self.wait_s
        while True:
            nodes = sorted(self.grid.get_node_ids())
            if len(nodes) >= self.n_sites:
                return nodes
            if time.monotonic() > deadline:
                raise RunError(
                    f"{len(nodes)} of {self.n_sites} sites connected within {self.wait_s:.0f} s"
                )
            time.sleep(0.5)

    def _describe(self, nodes: list[int]) -> dict[str, int]:
        msgs = [
            Message(RecordDict({"config": ConfigRecord({"ask": "describe"})}), n, MessageType.QUERY)
            for n in nodes
        ]
        sites: dict[str, int] = {}
        for reply in self._exchange(msgs, "describe", None):
            name = str(reply.content["site"]["name"])
            if name in sites:
                raise RunError(f"two sites call themselves {name!r}")
            sites[name] = reply.metadata.src_node_id
            self.record["sites"][name] = {k: int(v) for k, v in reply.content["counts"].items()}
            self.record["sites"][name]["crops"] = str(reply.content["site"].get("crops", NOT_SAID))
        # whether every site cut its images the same way (a mix is said, not refused)
        self.record["crops"] = crops_note(self.record["sites"])
        return sites

    def _round(self, r: int, plan: EpochPlan, sites, jobs: list[Job], weights) -> None:
        t0 = time.monotonic()
        msgs = []
        for name, node in sites.items():
            mine = [j for j in jobs if name in j.participants]
            if not mine:
                continue
            content: dict = {
                "config": ConfigRecord(
                    {"round": r, "jobs": ",".join(j.name for j in mine), "proximal-mu": self.mu}
                )
            }
            for j in mine:
                if weights[j.name]:
                    content[j.name] = to_record(weights[j.name])
            msgs.append(Message(RecordDict(content), node, MessageType.TRAIN, group_id=str(r)))
        replies = self._exchange(msgs, "train", r)
        losses: dict[str, float] = {}
        for j in jobs:
            per_site = [
                Message(
                    RecordDict(
                        {"arrays": rep.content[j.name], "metrics": rep.content[f"{j.name}.metrics"]}
                    ),
                    rep.metadata.src_node_id,
                    MessageType.TRAIN,
                )
                for rep in replies
                if j.name in rep.content.array_records
            ]
            if len(per_site) != len(j.participants):
                raise RunError(
                    f"round {r + 1}, {j.name}: "
                    f"{len(per_site)} of {len(j.participants)} sites replied"
                )
            arrays, metrics = self.strategy.aggregate_train(r + 1, per_site)
            if arrays is None:
                raise RunError(f"round {r + 1}, {j.name}: nothing to aggregate")
            weights[j.name] = from_record(arrays)
            losses[j.name] = float(metrics["train-loss"]) if metrics else float("nan")
        self.record["rounds"].append(
            {
                "round": r + 1,
                "phase": plan.phase,
                "trainable": list(plan.trainable),
                "train_loss": losses,
                "seconds": round(time.monotonic() - t0, 2),
            }
        )
        log.info(
            "round %d/%d (%s) done in %.1f s",
            r + 1,
            len(fold_plan(self.cfg)),
            plan.phase,
            time.monotonic() - t0,
        )

    def _score(self, sites, jobs: list[Job], weights) -> None:
        msgs = []
        for name, node in sites.items():
            mine = [j for j in jobs if j.fold is not None or j.left_out == name]
            # trainings this site took part in but is not scored on: their state can go
            done = [j.name for j in jobs if j not in mine and name in j.participants]
            config = {"jobs": ",".join(j.name for j in mine), "finished": ",".join(done)}
            content: dict = {"config": ConfigRecord(config)}
            for j in mine:
                content[j.name] = to_record(weights[j.name])
            msgs.append(Message(RecordDict(content), node, MessageType.EVALUATE))
        node_site = {node: name for name, node in sites.items()}
        for reply in self._exchange(msgs, "evaluate", None):
            site = node_site[reply.metadata.src_node_id]
            self.record["scores"][site] = {
                key: {k: _finite(v) for k, v in rec.items()}
                for key, rec in reply.content.metric_records.items()
            }

    # ----- messages --------------------------------------------------------------------
    def _exchange(self, msgs: list[Message], kind: str, r: int | None) -> list[Message]:
        t0 = time.monotonic()
        replies = list(self.grid.send_and_receive(msgs, timeout=self.round_timeout_s))
        self.record["timeline"].append(
            {
                "step": kind if r is None else f"{kind} {r + 1}",
                "seconds": round(time.monotonic() - t0, 2),
            }
        )
        if len(replies) != len(msgs):
            raise RunError(f"{kind}: {len(replies)} of {len(msgs)} sites replied in time")
        for reply in replies:
            if reply.has_error():
                raise RunError(
                    f"{kind}: site node {reply.metadata.src_node_id} failed: {reply.error.reason}"
                )
            self.record["received"].append(
                {
                    "kind": kind,
                    "round": None if r is None else r + 1,
                    "node": reply.metadata.src_node_id,
                    **manifest(reply),
                }
            )
        return replies

    def _save(self, status: str, seconds: float) -> None:
        self.out.write_federation({**self.record, "status": status, "seconds": round(seconds, 1)})


def _finite(v: Any) -> float | None:
    v = float(v)
    return None if v != v else v
