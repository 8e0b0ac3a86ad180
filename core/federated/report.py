"""`bpd report RUN_DIR` of a federated run: one self-contained HTML file.

A federated run has no folds/ of its own (each site's trainings are in its own folder,
at the site), so the cross-validation report does not apply. This one shows what the
server knows (core.federated.record): the per-site table (federated, left-out site,
site alone, pooled), the rounds, and what crossed the network; in a simulation also the
federated model's out-of-fold predictions. Every string from a file is escaped.
"""

from __future__ import annotations

import json
from pathlib import Path

from core.atomic import atomic_write_text
from core.evaluation.report import CSS, NOTICE
from core.evaluation.report_html import e, mean_sd, num, table
from core.federated.record import CELL_METRICS, FederatedResults, read_federated
from core.federated.results import ALL
from core.runs.folder import RunFolder
from core.scoring.metrics import METRIC_TITLES


def write_federated_report(run_dir: str | Path, html_path: str | Path | None = None) -> Path:
    """Render a federated RUN_DIR into one HTML file (default: the run's report path)."""
    run = RunFolder.existing(run_dir)
    results = read_federated(run)
    target = Path(html_path) if html_path else run.report_path
    return atomic_write_text(target, render_federated_report(run, results))


def render_federated_report(run: RunFolder, r: FederatedResults) -> str:
    sections = [("Summary", _summary(r))]
    for metric in CELL_METRICS:
        title = f"Per site: {METRIC_TITLES[metric]}, mean ± SD over the site's folds"
        sections.append((title, comparison_html(r, metric)))
    sections += [
        ("Rounds", _rounds(r)),
        ("What the server received from the sites", _traffic(r)),
    ]
    rows = run.predictions()
    if rows:
        sections.append(("Federated model: out-of-fold predictions per infant", _infants(rows)))
    config = json.dumps(run.config(), indent=2, default=str)
    sections.append(("Configuration", f"<pre>{e(config)}</pre>"))
    body = "".join(f"<h2>{e(title)}</h2>{html}" for title, html in sections)
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        f"<title>BPD Studio federated report – {e(run.run_id)}</title><style>{CSS}</style>"
        f"</head><body><h1>BPD Studio federated report</h1><p class=muted>Run {e(run.run_id)}"
        f'</p><p class="notice">{e(NOTICE)}</p>{body}<p class="notice">{e(NOTICE)}</p>'
        "</body></html>\n"
    )


def _summary(r: FederatedResults) -> str:
    strategy = r.strategy or "?"
    if r.proximal_mu:
        strategy += f" (mu {num(r.proximal_mu, 4)})"
    where = (
        "a simulation on one machine (every column)"
        if r.role == "simulation"
        else "real sites through `bpd federate serve` (site-alone and pooled need the "
        "images, so only a simulation has them)"
    )
    rows = [
        ["status", e(r.status)],
        ["sites", e(", ".join(r.sites)) or "–"],
        ["aggregation", e(strategy) + ", weighted by training patients; BatchNorm stays local"],
        ["rounds", str(len(r.rounds))],
        ["folds per site", e(r.folds_per_site if r.folds_per_site is not None else "–")],
        ["federation wall time", f"{num(r.seconds, 0)} s" if r.seconds is not None else "–"],
        ["pooled out-of-fold AUROC (federated model)", num(r.pooled_auroc)],
        ["run", e(where)],
    ]
    if r.error:
        rows.append(["error", e(r.error)])
    return table(["", "value"], rows, left=2)


def comparison_html(r: FederatedResults, metric: str = "auroc") -> str:
    if not r.rows:
        return "<p>No table yet: the federation has not finished.</p>"
    header = ["site", "patients (positive)", *(r.arm_title(a) for a in r.arms)]
    rows = []
    for row in r.rows:
        name = f"<b>{e(row.site)}</b>" if row.site == ALL else e(row.site)
        counts = f"{e(row.n_patients)} ({e(row.n_positive)})"
        rows.append([name, counts, *(mean_sd(row.value(a, metric)) for a in r.arms)])
    note = (
        "Every column is scored on the same test patients: K patient-level folds inside "
        "each site. The last row is over every site's folds. docs/federated.md says what "
        "each column trains."
    )
    return table(header, rows) + f"<p class=muted>{e(note)}</p>"


def _rounds(r: FederatedResults) -> str:
    if not r.rounds:
        return "<p>No round finished.</p>"
    rows = [
        [str(x.round), e(x.phase), e(", ".join(x.trainable)), num(x.train_loss),
         num(x.seconds, 1)]
        for x in r.rounds
    ]  # fmt: skip
    header = ["round", "phase", "groups exchanged", "mean training loss", "seconds"]
    return table(header, rows, text_cols=(1, 2))


def _traffic(r: FederatedResults) -> str:
    if not r.traffic:
        return "<p>Nothing received yet.</p>"
    rows = [
        [e(t.kind), e(t.title), str(t.messages), str(t.arrays), f"{t.values:,}",
         num(t.megabytes, 1), e(", ".join(t.numbers + t.texts)) or "–"]
        for t in r.traffic
    ]  # fmt: skip
    header = ["message", "what", "replies", "arrays", "values", "MB", "numbers and names"]
    names = sorted({n for t in r.traffic for n in t.array_names})
    listing = (
        f"<details><summary>The {len(names)} parameter names that were sent</summary>"
        f"<pre>{e(chr(10).join(names))}</pre></details>"
        if names
        else ""
    )
    note = (
        f"{num(r.total_megabytes, 1)} MB in all. Weights are the non-BatchNorm parameters of "
        "the groups that train (FedBN): no pixel, file name, path, patient id or "
        "prediction crosses the network; the server recorded every reply it received."
    )
    return table(header, rows, text_cols=(1, 6)) + listing + f"<p class=muted>{e(note)}</p>"


def _infants(rows: list[dict[str, str]]) -> str:
    def prob(row: dict[str, str]) -> float:
        try:
            return float(row.get("prob", ""))
        except ValueError:
            return -1.0

    body = [
        [e(x.get("patient_id", "")), e(x.get("label", "")), num(prob(x) if prob(x) >= 0 else None)]
        for x in sorted(rows, key=prob, reverse=True)
    ]
    note = "Patient ids are site:id (a simulation has every site's folder). Outcome 1 = positive."
    return f"<p class=muted>{e(note)}</p>" + table(["patient", "outcome", "probability"], body)
