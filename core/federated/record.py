"""A federated run's results as the report and the app show them, read through RunFolder.

Read-only and without torch or Flower (the app imports this in its own process): the
comparison table (summary.json's `federated.table`), the rounds and what the server
received from the sites (federation.json). A run still federating has its rounds and
no table yet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from core.errors import InputError
from core.federated.results import ALL, ARM_TITLES, ARMS
from core.runs.folder import RunFolder

CELL_METRICS = ("auroc", "balanced_accuracy", "f1")
KIND_TITLES = {
    "describe": "site name and counts (once)",
    "train": "weights after each round",
    "evaluate": "per-fold scores (once, at the end)",
}


@dataclass(frozen=True)
class SiteRow:
    site: str  # a site's name, or ALL for the row over every site's folds
    n_patients: int | None
    n_positive: int | None
    cells: dict[str, dict[str, Any]]  # arm -> metric -> {mean, sd, n}

    def value(self, arm: str, metric: str = "auroc") -> dict[str, Any]:
        return (self.cells.get(arm) or {}).get(metric) or {}


@dataclass(frozen=True)
class RoundRow:
    round: int
    phase: str
    trainable: tuple[str, ...]
    seconds: float | None
    train_loss: float | None  # mean over the round's trainings (None: undefined)


@dataclass(frozen=True)
class Traffic:
    """Every message of one kind the server received from the sites."""

    kind: str
    messages: int
    arrays: int
    values: int  # numbers in the arrays (parameters)
    megabytes: float
    array_names: tuple[str, ...]  # distinct parameter names (state_dict keys)
    numbers: tuple[str, ...]  # distinct metric names (counts, losses, scores)
    texts: tuple[str, ...]  # distinct config entries (e.g. "site")

    @property
    def title(self) -> str:
        return KIND_TITLES.get(self.kind, self.kind)


@dataclass(frozen=True)
class FederatedResults:
    status: str  # the run's state (running, finished, failed)
    role: str  # "simulation" (every column) or "server" (federated and left-out only)
    strategy: str | None
    proximal_mu: float | None
    sites: tuple[str, ...]
    folds_per_site: int | None
    arms: tuple[str, ...]  # the table's columns, in ARMS order
    rows: tuple[SiteRow, ...]  # one per site, then ALL; empty until the run finished
    rounds: tuple[RoundRow, ...]
    traffic: tuple[Traffic, ...]
    seconds: float | None  # the federation's wall time (the server's clock)
    pooled_auroc: float | None  # the federated model's out-of-fold AUROC (simulation)
    error: str | None

    @staticmethod
    def arm_title(arm: str) -> str:
        return ARM_TITLES.get(arm, arm)

    @property
    def total_megabytes(self) -> float:
        return sum(t.megabytes for t in self.traffic)


def read_federated(run: RunFolder) -> FederatedResults:
    """The run's federated results; InputError when it is not a federated run."""
    config = run.config()
    fed_config = config.get("federated")
    if not isinstance(fed_config, dict):
        raise InputError("not a federated run (bpd federate simulate or serve)", file=run.path)
    record = run.federation() or {}
    summary = (run.summary() or {}).get("federated") or {}
    table = summary.get("table") or {}
    arms = tuple(a for a in ARMS if a in (table.get("arms") or ()))
    rows = tuple(_site_row(site, row, arms) for site, row in (table.get("rows") or {}).items())
    sites = tuple(r.site for r in rows if r.site != ALL) or tuple(sorted(record.get("sites", {})))
    pooled = (run.summary() or {}).get("pooled_auroc")
    return FederatedResults(
        status=str(run.state().get("status") or record.get("status") or "unknown"),
        role="server" if fed_config.get("role") == "server" else "simulation",
        strategy=record.get("strategy") or summary.get("strategy"),
        proximal_mu=_number(record.get("proximal_mu", fed_config.get("proximal_mu"))),
        sites=sites,
        folds_per_site=summary.get("folds_per_site"),
        arms=arms,
        rows=rows,
        rounds=tuple(_round_row(r) for r in record.get("rounds") or ()),
        traffic=traffic(record.get("received") or ()),
        seconds=_number(record.get("seconds")),
        pooled_auroc=_number(pooled),
        error=record.get("error") or run.state().get("error"),
    )


def _site_row(site: str, row: dict[str, Any], arms: tuple[str, ...]) -> SiteRow:
    cells = {arm: dict(row.get(arm) or {}) for arm in arms}
    return SiteRow(site, row.get("n_patients"), row.get("n_positive"), cells)


def _round_row(r: dict[str, Any]) -> RoundRow:
    losses = [v for v in (r.get("train_loss") or {}).values() if _number(v) is not None]
    return RoundRow(
        round=int(r.get("round", 0)),
        phase=str(r.get("phase", "")),
        trainable=tuple(r.get("trainable") or ()),
        seconds=_number(r.get("seconds")),
        train_loss=sum(losses) / len(losses) if losses else None,
    )


def traffic(received: Any) -> tuple[Traffic, ...]:
    """federation.json's `received` (one manifest per reply: arrays as name -> [dtype,
    shape], metrics and configs with their values) summed per kind of message."""
    kinds: dict[str, dict[str, Any]] = {}
    for entry in received:
        t = kinds.setdefault(
            str(entry.get("kind", "?")),
            {"messages": 0, "arrays": 0, "values": 0, "bytes": 0, "names": set(),
             "numbers": set(), "texts": set()},
        )  # fmt: skip
        t["messages"] += 1
        for arrays in (entry.get("arrays") or {}).values():
            for name, (dtype, shape) in arrays.items():
                n = math.prod(int(d) for d in shape)
                t["arrays"] += 1
                t["values"] += n
                t["bytes"] += n * _itemsize(dtype)
                t["names"].add(name)
        for values in (entry.get("metrics") or {}).values():
            t["numbers"].update(values)
        for values in (entry.get("configs") or {}).values():
            t["texts"].update(values)
    return tuple(
        Traffic(kind, t["messages"], t["arrays"], t["values"], t["bytes"] / 1e6,
                tuple(sorted(t["names"])), tuple(sorted(t["numbers"])), tuple(sorted(t["texts"])))
        for kind, t in kinds.items()
    )  # fmt: skip


def _itemsize(dtype: str) -> int:
    """Bytes per value of a manifest's dtype text ("float32", "<f4", "numpy.ndarray:float32")."""
    text = str(dtype).lower()
    for name, size in (("float64", 8), ("f8", 8), ("float16", 2), ("f2", 2), ("int64", 8)):
        if name in text:
            return size
    return 4  # what core.federated.wire sends: float32


def _number(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v
