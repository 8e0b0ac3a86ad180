"""`write_report(run_dir)`: one self-contained HTML file describing a run.

Plots are inline SVG (core.evaluation.svg), so the file opens offline anywhere and can
be mailed as one attachment. Every string that came from an input file (patient ids,
column names, outcome values, paths, messages) goes through `html.escape`.
"""

from __future__ import annotations

import json
import math
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import atomic_write_text
from core.evaluation.metrics import METRIC_NAMES, binary_metrics, summarize_folds
from core.evaluation.run_data import RunData, load_run
from core.evaluation.statistics import bootstrap_auroc_ci
from core.evaluation.svg import PALETTE, Series, line_plot

NOTICE = (
    "Research use only. Not a medical device: these numbers describe a cross-validated "
    "research model on this cohort and must not guide the care of an individual infant."
)
METRIC_TITLES = {
    "auroc": "AUROC",
    "balanced_accuracy": "Balanced accuracy",
    "f1": "F1",
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
    "precision": "Precision (PPV)",
    "npv": "NPV",
}
CSS = """
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222}
h1{margin-bottom:4px} h2{border-bottom:1px solid #ccc;padding-bottom:3px;margin-top:32px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3} td.l,th.l{text-align:left}
.notice{background:#fff4e5;border:1px solid #f0a040;padding:8px 12px;border-radius:4px}
.plots{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
figure{margin:0;max-width:460px} .muted{color:#666;font-size:13px}
pre{background:#f7f7f7;padding:8px;font-size:12px;overflow-x:auto}
tr.wrong td{background:#fff0f0}
"""


def e(value: Any) -> str:
    """Escape anything for HTML text or attributes."""
    return escape(str(value), quote=True)


def num(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, int | np.integer):
        return str(int(x))
    return f"{float(x):.{digits}f}"


def mean_sd(stat: dict | None) -> str:
    if not stat or stat.get("mean") is None:
        return "–"
    sd = stat.get("sd")
    return f"{num(stat['mean'])} ± {num(sd)}" if sd is not None else num(stat["mean"])


def _table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    """HTML table from already-escaped cells; the first `left` columns align left."""

    def cells(tag: str, row: list[str]) -> str:
        return "".join(
            f"<{tag}{' class=l' if i < left else ''}>{c}</{tag}>" for i, c in enumerate(row)
        )

    body = "".join(f"<tr>{cells('td', r)}</tr>" for r in rows)
    return f"<table><tr>{cells('th', header)}</tr>{body}</table>"


def _summary_stats(run: RunData) -> dict[str, dict]:
    stats = summarize_folds([f.metrics for f in run.folds])
    for name in METRIC_NAMES:
        if isinstance(run.summary.get(name), dict):
            stats[name] = run.summary[name]
    return stats


def _roc_section(run: RunData) -> str:
    from sklearn.metrics import roc_curve

    y, p = run.oof.labels, run.oof.probs
    keep = ~np.isnan(p)
    y, p = y[keep], p[keep]
    if len(set(y.tolist())) < 2:
        return "<p>Pooled ROC curve undefined: only one outcome among the tested patients.</p>"
    ci = bootstrap_auroc_ci(y, p, n_boot=2000, seed=0)
    series = []
    for i, f in enumerate(run.folds):
        if len(set(f.labels.tolist())) == 2:
            fx, fy, _ = roc_curve(f.labels, f.probs)
            series.append(Series("", list(fx), list(fy), PALETTE[i % 10], 1.0, opacity=0.3))
    fx, fy, _ = roc_curve(y, p)
    series.append(Series("pooled out-of-fold", list(fx), list(fy), "#000", 2.5))
    svg = line_plot(
        series,
        title="ROC curve (out-of-fold)",
        x_label="1 − specificity",
        y_label="sensitivity",
        x_range=(0, 1),
        y_range=(0, 1),
        diagonal=True,
        legend="bottom",
    )
    caption = (
        f"Pooled out-of-fold AUROC <b>{num(ci.estimate)}</b> "
        f"(95% CI {num(ci.low)}–{num(ci.high)}, stratified percentile bootstrap, "
        f"{ci.n_boot} resamples), {len(y)} infants, each scored by the mean probability "
        "of the fold models that did not train on them. Thin lines: single folds."
    )
    return f"<figure>{svg}<figcaption class=muted>{caption}</figcaption></figure>"


def _calibration_section(run: RunData, n_bins: int = 10) -> str:
    y, p = run.oof.labels, run.oof.probs
    keep = ~np.isnan(p)
    y, p = y[keep], p[keep]
    edges = np.linspace(0, 1, n_bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, n_bins - 1)
    xs, ys, counts = [], [], []
    for b in range(n_bins):
        in_bin = which == b
        if in_bin.any():
            xs.append(float(p[in_bin].mean()))
            ys.append(float(y[in_bin].mean()))
            counts.append(int(in_bin.sum()))
    svg = line_plot(
        [Series("observed", xs, ys, PALETTE[0], 2.0, markers=True)],
        title="Calibration (reliability)",
        x_label="mean predicted probability",
        y_label="observed fraction positive",
        x_range=(0, 1),
        y_range=(0, 1),
        diagonal=True,
        legend=None,
    )
    brier = float(np.mean((p - y) ** 2)) if len(p) else math.nan
    rows = [[num(x), num(o), str(c)] for x, o, c in zip(xs, ys, counts, strict=True)]
    return (
        f"<figure>{svg}<figcaption class=muted>{n_bins} equal-width bins of the pooled "
        f"out-of-fold probability; dashed: perfect calibration. Brier score {num(brier)}."
        f"</figcaption></figure><div>"
        + _table(["predicted", "observed", "infants"], rows, left=0)
        + "</div>"
    )


def _confusion_section(run: RunData) -> str:
    thresholds = sorted({f.threshold for f in run.folds})
    if len(thresholds) == 1:
        t = thresholds[0]
        keep = ~np.isnan(run.oof.probs)
        m = binary_metrics(run.oof.labels[keep], run.oof.probs[keep], threshold=t)
        how = f"Pooled out-of-fold mean probability at threshold {num(t)}: one count per infant."
    else:
        m = {
            k: sum(int(f.metrics.get(k) or 0) for f in run.folds) for k in ("tp", "tn", "fp", "fn")
        }
        how = (
            "Folds used their own thresholds (chosen on training patients only), so the "
            "matrix sums the folds' matrices: an infant counts once per repeat."
        )
    tp, tn, fp, fn = (int(m[k]) for k in ("tp", "tn", "fp", "fn"))
    table = _table(
        ["", "predicted positive", "predicted negative"],
        [["actual positive", str(tp), str(fn)], ["actual negative", str(fp), str(tn)]],
    )
    return f"{table}<p class=muted>{e(how)}</p>"


def _mean_series(series: list[Series]) -> Series:
    by_epoch: dict[float, list[float]] = {}
    for s in series:
        for x, y in zip(s.x, s.y, strict=True):
            if x is not None and y is not None and math.isfinite(y):
                by_epoch.setdefault(x, []).append(y)
    xs = sorted(by_epoch)
    return Series("mean over folds", xs, [float(np.mean(by_epoch[x])) for x in xs], "#000", 2.5)


def _history_section(run: RunData) -> str:
    loss, auc = [], []
    for i, f in enumerate(run.folds):
        epochs = [h.get("epoch") for h in f.history]
        color = PALETTE[i % 10]
        width, opacity = (1.5, 0.9) if len(run.folds) <= 10 else (1.0, 0.35)
        for key, out in (("train_loss", loss), ("test_auroc", auc)):
            ys = [h.get(key) for h in f.history]
            out.append(Series(f.fold_id, epochs, ys, color, width, opacity=opacity))
    if not any(s.x for s in loss):
        return "<p>No per-epoch history recorded in the folds.</p>"
    for out in (loss, auc):  # the mean over folds, per epoch, drawn on top
        out.append(_mean_series(out))
    if len(run.folds) > 10:  # 30 fold names would hide the plot: name the mean only
        for out in (loss, auc):
            for s in out[:-1]:
                s.name = ""
    return (
        '<div class="plots">'
        + line_plot(loss, title="Training loss", x_label="epoch", y_label="train loss")
        + line_plot(
            auc,
            title="Test-fold AUROC per epoch",
            x_label="epoch",
            y_label="AUROC",
            y_range=(0, 1),
            legend="bottom",
        )
        + "</div><p class=muted>Per-epoch test AUROC is shown for insight only: the method "
        "scores the last epoch's model (no early stopping on the test fold).</p>"
    )


def _folds_section(run: RunData) -> str:
    header = ["fold", "train", "test", "test +", "threshold"] + [
        METRIC_TITLES[m] for m in METRIC_NAMES
    ]
    rows = []
    for f in run.folds:
        n_pos = int(f.labels.sum()) if len(f.labels) else "–"
        rows.append(
            [
                e(f.fold_id),
                str(len(f.train_patients)),
                str(len(f.test_patients)),
                str(n_pos),
                num(f.threshold),
            ]
            + [num(f.metrics.get(m)) for m in METRIC_NAMES]
        )
    return _table(header, rows)


def _baselines_section(run: RunData, stats: dict[str, dict]) -> str:
    rows = [
        [
            "image model (this run)",
            mean_sd(stats.get("auroc")),
            num(run.summary.get("pooled_auroc")),
            "",
        ]
    ]
    base = run.summary.get("baselines") or {}
    for key in ("irds_alone", "clinical_logistic"):
        b = base.get(key)
        if not b:
            continue
        note = b.get("skipped") or b.get("note") or ""
        if b.get("variables"):
            note = "variables: " + ", ".join(b["variables"]) + ". " + (b.get("imputation") or "")
        if b.get("skipped_variables"):
            note += " Skipped: " + "; ".join(
                f"{k} ({v})" for k, v in b["skipped_variables"].items()
            )
        rows.append(
            [
                e(b.get("title", key)),
                mean_sd(b.get("auroc")),
                num(b.get("pooled_auroc")),
                e(note.strip()),
            ]
        )
    text = (
        ""
        if base
        else (
            "<p class=muted>No clinical baselines in summary.json for this run (the cohort "
            "table had no clinical variables, or the run predates them).</p>"
        )
    )
    table = _table(["score", "AUROC mean ± SD over folds", "pooled AUROC", "notes"], rows)
    return table + text + "<p class=muted>All rows use the same folds as the image model.</p>"


def _cohort_section(run: RunData) -> str:
    s = run.cohort.get("summary", {})
    if not s:
        return "<p>cohort.json is missing from the run folder.</p>"
    n, pos = s.get("n_patients", 0), s.get("n_positive", 0)
    share = f" ({100 * pos / n:.0f}% positive)" if n else ""
    rows = [
        ["table", e(s.get("table", ""))],
        ["patients", f"{n}{share}"],
        ["images", e(s.get("n_images", "–"))],
        ["positive / negative", f"{e(pos)} / {e(s.get('n_negative', '–'))}"],
        ["outcome column", e(s.get("outcome_column", ""))],
        ["positive values", e(", ".join(map(str, s.get("positive_values", []))))],
        ["negative values", e(", ".join(map(str, s.get("negative_values", []))))],
        ["excluded patients", e(s.get("n_excluded", 0))],
        ["warnings", e(s.get("n_warnings", 0))],
    ]
    out = _table(["", ""], rows, left=2)
    reasons = s.get("excluded_by_reason") or {}
    if reasons:
        out += "<h3>Exclusions by reason</h3>" + _table(
            ["reason", "patients"], [[e(k), e(v)] for k, v in sorted(reasons.items())]
        )
    exclusions = run.cohort.get("exclusions") or []
    if exclusions:
        rows = [
            [
                e(x.get("patient_id", "")),
                e(x.get("row", "")),
                e(x.get("reason", "")),
                e(x.get("message", "")),
            ]
            for x in exclusions[:500]
        ]
        out += (
            "<details><summary>Excluded patients</summary>"
            + _table(["patient", "row", "reason", "message"], rows, left=4)
            + "</details>"
        )
    return out


def _infants_section(run: RunData) -> str:
    o = run.oof
    thresholds = {f.threshold for f in run.folds}
    t = next(iter(thresholds)) if len(thresholds) == 1 else None
    order = np.argsort(-np.nan_to_num(o.probs, nan=-1.0), kind="stable")
    rep_cols = [f"repeat {r}" for r in range(o.repeat_probs.shape[1])]
    header = ["patient", "outcome", "mean probability", "predicted", *rep_cols]
    rows_html = []
    for i in order:
        pred = "–" if t is None or math.isnan(o.probs[i]) else str(int(o.probs[i] >= t))
        wrong = pred != "–" and int(pred) != int(o.labels[i])
        cells = [e(o.patient_ids[i]), str(int(o.labels[i])), num(o.probs[i]), pred] + [
            num(v) for v in o.repeat_probs[i]
        ]
        tds = "".join(f"<td{' class=l' if j == 0 else ''}>{c}</td>" for j, c in enumerate(cells))
        rows_html.append(f"<tr{' class=wrong' if wrong else ''}>{tds}</tr>")
    head = "".join(f"<th{' class=l' if j == 0 else ''}>{e(h)}</th>" for j, h in enumerate(header))
    note = (
        f"Predicted class at threshold {num(t)}; rows shaded red disagree with the outcome."
        if t is not None
        else "Folds used different thresholds; see the fold table."
    )
    return (
        f"<p class=muted>{e(note)} Outcome 1 = positive.</p>"
        f"<table><tr>{head}</tr>{''.join(rows_html)}</table>"
    )


def render_report(run: RunData) -> str:
    stats = _summary_stats(run)
    status = run.state.get("status", "unknown")
    n_expected = run.summary.get("n_folds")
    metrics_rows = [
        [METRIC_TITLES[m], mean_sd(stats.get(m)), str(stats.get(m, {}).get("n", "–"))]
        for m in METRIC_NAMES
    ]
    train_cfg = run.config.get("train", {})
    headline = (
        f"{e(train_cfg.get('init', '?'))} initialisation, strategy "
        f"{e(train_cfg.get('strategy', '?'))}; {len(run.folds)} finished folds"
        + (f" of {e(n_expected)}" if n_expected else "")
        + f" over {run.n_repeats} repeat(s); run status: {e(status)}."
    )
    sections = [
        (
            "Summary",
            f"<p>{headline}</p>"
            + _table(["metric", "mean ± SD over folds", "folds"], metrics_rows),
        ),
        (
            "ROC curve and calibration",
            '<div class="plots">' + _roc_section(run) + _calibration_section(run) + "</div>",
        ),
        ("Confusion matrix", _confusion_section(run)),
        ("Clinical baselines beside the image model", _baselines_section(run, stats)),
        ("Per-fold results", _folds_section(run)),
        ("Training curves per fold", _history_section(run)),
        ("Cohort", _cohort_section(run)),
        ("Out-of-fold predictions per infant", _infants_section(run)),
        ("Configuration", "<pre>" + e(json.dumps(run.config, indent=2, default=str)) + "</pre>"),
    ]
    body = "".join(f"<h2>{e(title)}</h2>{html}" for title, html in sections)
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        f"<title>BPD Studio report – {e(run.name)}</title><style>{CSS}</style></head><body>"
        f"<h1>BPD Studio report</h1><p class=muted>Run {e(run.name)}</p>"
        f'<p class="notice">{e(NOTICE)}</p>{body}'
        f'<p class="notice">{e(NOTICE)}</p></body></html>\n'
    )


def write_report(run_dir: str | Path, html_path: str | Path | None = None) -> Path:
    """Render RUN_DIR into one HTML file (default RUN_DIR/report.html), atomically."""
    run = load_run(run_dir)
    target = Path(html_path) if html_path else run.run_dir / "report.html"
    return atomic_write_text(target, render_report(run))
