"""The comparison table of a federated run: per site, AUROC (mean ± SD over the site's
folds) of the federated model, of the model when the site left the federation, of the
site training alone, and of pooled training; plus a row over every site's folds."""

from __future__ import annotations

from typing import Any

from core.runs.summary import _clean_tree
from core.scoring.metrics import summarize_folds

ARMS = ("federated", "loso", "local", "pooled")
ARM_TITLES = {
    "federated": "federated (FedBN)",
    "loso": "left out, BN re-estimated",
    "local": "site alone",
    "pooled": "pooled images",
}
ALL = "all sites"


def arms_from_scores(scores: dict[str, dict[str, dict]], n_folds: int) -> dict[str, dict]:
    """The server's per-site scores -> {"federated": {site: [fold metrics]}, "loso": ...}."""
    fed: dict[str, list] = {}
    loso: dict[str, list] = {}
    for site, recs in scores.items():
        fed[site] = [recs[f"fed-f{k}"] for k in range(n_folds) if f"fed-f{k}" in recs]
        got = [recs.get(f"loso-{site}-f{k}") for k in range(n_folds)]
        if all(got):
            loso[site] = got
    return {"federated": fed, **({"loso": loso} if loso else {})}


def comparison_table(
    arms: dict[str, dict[str, list[dict]]], sites: dict[str, dict]
) -> dict[str, Any]:
    """{"rows": {site|ALL: {"n_patients", "n_positive", arm: summary}}, "arms": [...]}"""
    present = [a for a in ARMS if a in arms]
    rows: dict[str, Any] = {}
    for site, counts in sites.items():
        row: dict[str, Any] = {
            "n_patients": counts.get("n-patients"),
            "n_positive": counts.get("n-positive"),
        }
        for arm in present:
            row[arm] = _cell(arms[arm].get(site, []))
        rows[site] = row
    every: dict[str, Any] = {
        "n_patients": sum(int(c.get("n-patients", 0)) for c in sites.values()),
        "n_positive": sum(int(c.get("n-positive", 0)) for c in sites.values()),
    }
    for arm in present:
        every[arm] = _cell([m for site in sites for m in arms[arm].get(site, [])])
    rows[ALL] = every
    return _clean_tree({"arms": present, "rows": rows})


def _cell(fold_metrics: list[dict]) -> dict[str, Any]:
    s = summarize_folds(fold_metrics)
    return {name: s[name] for name in ("auroc", "balanced_accuracy", "f1")}


def table_markdown(table: dict[str, Any]) -> str:
    arms = table["arms"]
    head = "| site | patients (positive) | " + " | ".join(ARM_TITLES[a] for a in arms) + " |"
    lines = [head, "|" + "---|" * (2 + len(arms))]
    for site, row in table["rows"].items():
        cells = [_fmt(row[a]["auroc"]) for a in arms]
        lines.append(
            f"| {site} | {row['n_patients']} ({row['n_positive']}) | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def _fmt(m: dict[str, Any]) -> str:
    if m.get("mean") is None:
        return "undefined"
    sd = f" ± {m['sd']:.3f}" if m.get("sd") is not None else ""
    return f"{m['mean']:.3f}{sd}"


def write_federated_summary(
    run: Any,
    record: dict[str, Any],
    arms: dict[str, Any],
    n_folds: int,
    pooled_auroc: float | None,
) -> dict[str, Any]:
    """summary.json of a federated run (simulated or served): the federated arm's fold metrics
    and the per-site comparison table; `pooled_auroc` None where the server saw no predictions."""
    sites = record["sites"]
    fed_folds = [m for site in sites for m in arms["federated"].get(site, [])]
    summary: dict[str, Any] = dict(summarize_folds(fed_folds))
    summary.update(
        {
            "pooled_auroc": pooled_auroc,
            "n_patients": sum(int(c["n-patients"]) for c in sites.values()),
            "n_positive": sum(int(c["n-positive"]) for c in sites.values()),
            "n_folds": len(fed_folds),
            "federated": {
                "table": comparison_table(arms, sites),
                "strategy": record.get("strategy"),
                "proximal_mu": record.get("proximal_mu"),
                "rounds": len(record.get("rounds", [])),
                "folds_per_site": n_folds,
                "sites": sites,
                # whether the sites cut their images alike (core.federated.crops)
                "crops": record.get("crops"),
                "seconds": record.get("seconds"),
            },
        }
    )
    summary = _clean_tree(summary)
    run.write_summary(summary)
    return summary
