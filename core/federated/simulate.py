"""`bpd federate simulate`: N sites on this machine, trained together through Flower.

One run folder (core.runs.folder), the same contract as a cross-validation run, plus:
sites/<name>/ (each site's own folder: its cohort source, job states while training,
per-fold predictions of every arm) and the server's federation record. The summary's
headline metrics are the federated model's over every site's folds; its "federated"
entry holds the comparison table (results.py).
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.cohort.source import CohortSource
from core.errors import InputError, RunError
from core.federated import require_flwr
from core.federated.results import arms_from_scores, write_federated_summary
from core.federated.site import check_site_name, site_config
from core.runs.folder import RunFolder, now_iso, package_versions
from core.scoring.metrics import auroc
from core.training.config import TrainConfig

Say = Callable[[str], None]
COMPARISONS = ("local", "pooled")


@dataclass(frozen=True)
class SiteSource:
    """One simulated site: its name and where its cohort is (the CohortSource a
    `bpd train` of that site alone would read)."""

    name: str
    cohort: CohortSource


def simulate(
    sources: list[SiteSource],
    cfg: TrainConfig,
    out: Path,
    *,
    loso: bool = True,
    compare: tuple[str, ...] = COMPARISONS,
    proximal_mu: float = 0.0,
    threads_per_site: int = 0,
    say: Say = lambda _msg: None,
) -> dict[str, Any]:
    require_flwr()
    _check_sources(sources, cfg, compare)
    prepared = {s.name: _prepare(s, cfg, say) for s in sources}
    threads = threads_per_site or max(1, (os.cpu_count() or 1) // len(sources))
    config = {
        "train": cfg.to_json(),
        "federated": {
            "sites": [{"name": s.name, "cohort_source": s.cohort.to_json()} for s in sources],
            "rounds": cfg.total_epochs,
            "probe_rounds": cfg.probe_epochs if cfg.uses_probe else 0,
            "loso": loso,
            "compare": list(compare),
            "proximal_mu": proximal_mu,
            "runtime": "Flower deployment runtime on 127.0.0.1 (core.federated.deployment)",
            "threads_per_site": threads,
        },
        "versions": {**package_versions(), "flwr": _flwr_version()},
        "seed": cfg.seed,
        "created": now_iso(),
    }
    cohorts = {name: p.cohort.to_json() for name, p in prepared.items()}
    run = RunFolder.create(out, config, {"sites": cohorts})
    events = run.events()
    events.emit(
        "run_started",
        run_id=run.run_id,
        run_dir=str(run.path),
        n_folds_total=cfg.cv_folds * len(sources),
        n_patients=sum(len(p.labels) for p in prepared.values()),
        n_positive=sum(int(p.labels.sum()) for p in prepared.values()),
        config=cfg.to_json(),
        runtime={"federated": True},
        resumed=False,
    )
    try:
        with run.lock():  # one trainer per run folder, as `bpd train` (core.runs.lock)
            summary = _run(run, sources, prepared, cfg, loso, compare, proximal_mu, threads, say)
    except BaseException as exc:
        run.write_state("failed", error=f"{type(exc).__name__}: {exc}")
        events.emit(
            "run_failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()
        )
        raise
    run.write_state("finished")
    events.emit("run_finished", summary=summary)
    return summary


def _run(run, sources, prepared, cfg, loso, compare, mu, threads, say) -> dict[str, Any]:
    from core.federated.comparison import local_only, pooled
    from core.federated.deployment import LocalFederation
    from core.training.data import TrainingData
    from core.training.runtime import resolve_runtime

    for i, s in enumerate(sources):
        RunFolder.create(run.site(s.name).path, site_config(s.name, i, s.cohort, cfg),
                         prepared[s.name].cohort.to_json())  # fmt: skip
    run_config = {
        "recipe": _json(cfg.to_json()),
        "n-sites": len(sources),
        "loso": bool(loso),
        "proximal-mu": float(mu),
        "wait-s": 300.0,
        "round-timeout-s": 6 * 3600.0,
    }
    say(f"Flower: SuperLink and {len(sources)} SuperNodes on 127.0.0.1, {cfg.total_epochs} rounds")
    t0 = time.monotonic()
    watcher = _RoundWatcher(run, cfg.total_epochs, say)
    site_dirs = {s.name: run.site(s.name).path.resolve() for s in sources}
    with LocalFederation(site_dirs, run.path.resolve(), threads) as fed:
        server_log = fed.run_app(run_config, is_done=watcher.finished, on_wait=watcher.poll)
    record = run.federation() or {}
    if record.get("status") != "finished":
        tail = "\n".join(server_log.splitlines()[-25:])
        raise RunError(
            f"the federated run did not finish (server status {record.get('status')!r}):\n{tail}"
        )
    say(f"federation finished in {time.monotonic() - t0:.0f} s")
    sites = record["sites"]
    n_folds = min(int(c["n-folds"]) for c in sites.values())
    arms = arms_from_scores(record["scores"], n_folds)
    data = {name: TrainingData.from_prepared(p) for name, p in prepared.items()}
    local_cfg = cfg.replace(eval_every_epoch=False)
    runtime = resolve_runtime(local_cfg)
    if "local" in compare:
        arms["local"] = local_only(run, data, local_cfg, runtime, say)
    if "pooled" in compare:
        arms["pooled"] = pooled(run, data, local_cfg, runtime, say)
    rows = _federated_predictions(run, list(sites), n_folds)
    run.write_predictions(rows, ["patient_id", "label", "prob", "n_repeats", "prob_r0"])
    labels = np.array([int(r["label"]) for r in rows])
    probs = np.array([float(r["prob"]) for r in rows])
    pooled_auroc = auroc(labels, probs) if len(rows) else None
    return write_federated_summary(run, record, arms, n_folds, pooled_auroc)


class _RoundWatcher:
    """Reads the server's record while the federation runs: progress lines, and done."""

    def __init__(self, run: RunFolder, n_rounds: int, say: Say):
        self.run, self.n_rounds, self.say = run, n_rounds, say
        self.seen = 0
        self.last = 0.0
        self.status = None

    def poll(self) -> None:
        if time.monotonic() - self.last < 2.0:
            return
        self.last = time.monotonic()
        try:
            record = self.run.federation() or {}
        except InputError:  # being replaced this instant; read it next time
            return
        self.status = record.get("status")
        for r in record.get("rounds", [])[self.seen :]:
            self.say(f"round {r['round']}/{self.n_rounds} ({r['phase']}) {r['seconds']:.0f} s")
        self.seen = len(record.get("rounds", []))

    def finished(self) -> bool:
        return self.status in ("finished", "failed")


def _federated_predictions(run: RunFolder, sites: list[str], n_folds: int) -> list[dict[str, Any]]:
    """The federated arm's out-of-fold predictions, one row per patient ("site:id"); in a
    simulation every site's folder is on this machine."""
    rows = []
    for site in sites:
        for k in range(n_folds):
            for r in run.site(site).fold(f"fed-f{k}").read_predictions():
                pid = f"{site}:{r['patient_id']}"
                rows.append({"patient_id": pid, "label": int(r["label"]), "prob": float(r["prob"]),
                             "n_repeats": 1, "prob_r0": float(r["prob"])})  # fmt: skip
    return rows


def _prepare(source: SiteSource, cfg: TrainConfig, say: Say):
    from core.cohort.loader import load_source
    from core.cohort.prepare import prepare_images
    from core.cohort.preprocess import PreprocessConfig

    cohort = load_source(source.cohort)
    # the site's own crop boxes, as its folder freezes them (core.federated.crops)
    crops = source.cohort.crop_table() if source.cohort.crops else None
    prepared = prepare_images(cohort, PreprocessConfig(resolution=cfg.resolution), crops=crops)
    c = prepared.cohort
    if not c.is_usable(min_per_class=cfg.cv_folds):
        raise InputError(
            f"site {source.name}: {cfg.cv_folds} folds inside the site need at least "
            f"{cfg.cv_folds} usable patients of each outcome; it has {c.n_positive} positive "
            f"and {c.n_negative} negative (run `bpd cohort check` to see what was excluded)",
            file=source.cohort.table,
        )
    n_pos = int(prepared.labels.sum())
    say(f"site {source.name}: {len(prepared.labels)} patients ({n_pos} positive), "
        f"{len(prepared.pixels)} images")  # fmt: skip
    return prepared


def _check_sources(sources: list[SiteSource], cfg: TrainConfig, compare: tuple[str, ...]) -> None:
    from core.models.registry import weights_available

    if len(sources) < 2:
        raise InputError("a federation needs at least two sites (--site NAME=TABLE, twice or more)")
    names = [check_site_name(s.name) for s in sources]
    for s in sources:  # each site's cohort as a run of its own would need it
        if s.cohort.outcome is None:
            raise InputError(f"site {s.name}: no outcome column named", file=s.cohort.table)
        s.cohort.outcome.require_complete(s.cohort.table)
    if len(set(names)) != len(names):
        raise InputError(f"site names must differ: {', '.join(names)}")
    unknown = sorted(set(compare) - set(COMPARISONS))
    if unknown:
        raise InputError(
            f"unknown comparison(s) {', '.join(unknown)}; choose from {', '.join(COMPARISONS)}"
        )
    if not weights_available(cfg.init):
        raise InputError(
            f"the {cfg.init} weights are not on this machine; add them with "
            f"`bpd weights import FILE --init {cfg.init}` or use --init random"
        )


def _json(obj: Any) -> str:
    import json

    return json.dumps(obj, separators=(",", ":"))


def _flwr_version() -> str:
    import importlib.metadata as md

    return md.version("flwr")
