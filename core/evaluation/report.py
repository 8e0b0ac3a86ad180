"""`write_report(run_dir)`: one self-contained HTML file describing a run.

Plots are inline SVG (core.evaluation.svg), so the file opens offline anywhere and can
be mailed as one attachment. Every string that came from an input file (patient ids,
column names, outcome values, paths, messages) goes through `html.escape`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from core.atomic import atomic_write_text
from core.evaluation.report_gallery import gallery_section
from core.evaluation.report_html import caveat_html, e, mean_sd, num, table
from core.evaluation.report_plots import (
    calibration_section,
    history_section,
    pr_section,
    roc_section,
)
from core.evaluation.run_data import RunData, load_run
from core.scoring.metrics import METRIC_NAMES, METRIC_TITLES, binary_metrics, summarize_folds

NOTICE = (
    "Research use only. Not a medical device: these numbers describe a cross-validated "
    "research model on this cohort and must not guide the care of an individual infant."
)
# Works from a phone-sized 760 px window up: wide tables scroll inside their own box
# (div.scroll), plots shrink to the page width, figures wrap.
CSS = """
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222;
padding:0 12px}
h1{margin-bottom:4px} h2{border-bottom:1px solid #ccc;padding-bottom:3px;margin-top:32px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3} td.l,th.l{text-align:left}
.notice{background:#fff4e5;border:1px solid #f0a040;padding:8px 12px;border-radius:4px}
.plots{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
figure{margin:0;max-width:min(460px,100%)} .muted{color:#666;font-size:13px}
svg{max-width:100%;height:auto}
.scroll{overflow-x:auto;max-width:100%}
pre{background:#f7f7f7;padding:8px;font-size:12px;overflow-x:auto;white-space:pre-wrap;
overflow-wrap:anywhere}
.gallery{display:flex;flex-wrap:wrap;gap:12px}
figure.cam{width:220px;font-size:12px} figure.cam img{display:block;max-width:100%;
height:auto;background:#111} h4{margin:12px 0 4px;font-size:14px}
p,figcaption,td.l{overflow-wrap:anywhere}
td:first-child,th:first-child{white-space:nowrap}
tr.wrong td{background:#fff0f0}
"""


def _summary_stats(run: RunData) -> dict[str, dict]:
    stats = summarize_folds([f.metrics for f in run.folds])
    for name in METRIC_NAMES:
        if isinstance(run.summary.get(name), dict):
            stats[name] = run.summary[name]
    return stats


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
    matrix = table(
        ["", "predicted positive", "predicted negative"],
        [["actual positive", str(tp), str(fn)], ["actual negative", str(fp), str(tn)]],
    )
    return f"{matrix}<p class=muted>{e(how)}</p>"


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
    return table(header, rows)


def baselines_from_cohort_table(run: RunData) -> tuple[dict, str]:
    """Baselines for a run whose summary has none, from the cohort table its config
    names (table only, no images), on the run's own folds. Returns (baselines or
    {}, a sentence saying where they came from or why there are none)."""
    from core.cohort.loader import load_recorded_cohort
    from core.errors import BPDError
    from core.scoring.baselines import clinical_baselines

    source = run.config.get("cohort_source") or {}
    outcome = source.get("outcome") if isinstance(source.get("outcome"), dict) else {}
    if not source.get("table") or not outcome.get("column"):
        return {}, "No clinical baselines: the run has none and its config names no table."
    try:
        cohort = load_recorded_cohort(source)
        splits = [(f.fold_id, f.train_patients, f.test_patients) for f in run.folds]
        base = clinical_baselines(cohort.patients, splits)
    except (BPDError, OSError, KeyError, ValueError) as exc:
        return {}, f"No clinical baselines: the cohort table could not be re-read ({exc})."
    return base, (
        f"Baselines computed now from {source['table']} (the run's summary has none), "
        "on this run's folds."
    )


def _baselines_section(run: RunData, stats: dict[str, dict]) -> str:
    rows = [
        [
            "image model (this run)",
            mean_sd(stats.get("auroc")),
            num(run.summary.get("ensemble_auroc", run.summary.get("pooled_auroc"))),
            "",
        ]
    ]
    base = run.summary.get("baselines") or {}
    source_note = ""
    if not base:
        base, source_note = baselines_from_cohort_table(run)
    for key in ("irds_alone", "clinical_logistic"):
        b = base.get(key)
        if not b:
            continue
        note = b.get("skipped") or b.get("note") or ""
        if b.get("variables"):
            imputation = b.get("imputation") or ""
            note = (
                f"Variables: {', '.join(b['variables'])}. {imputation[:1].upper()}{imputation[1:]}"
            )
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
    text = f"<p class=muted>{e(source_note)}</p>" if source_note else ""
    header = ["score", "AUROC mean ± SD over folds", "ensemble AUROC", "notes"]
    matrix = table(header, rows, text_cols=(3,))
    ensemble = (
        "<p class=muted>All rows use the same folds as the image model. Ensemble AUROC: "
        "one AUROC over every tested infant's out-of-fold probability averaged over the "
        "repeats that tested the infant (an ensemble of the repeats' fold models), not "
        "the mean of the folds' AUROCs.</p>"
    )
    return matrix + text + ensemble


def _cohort_section(run: RunData) -> str:
    s = run.cohort.get("summary", {})
    if not s:
        return "<p>The run folder has no cohort record.</p>"
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
        [
            "first image of a patient (several images)",
            e(", ".join(f"{k}: {v}" for k, v in (s.get("first_image_by") or {}).items()) or "–"),
        ],
        ["warnings", e(s.get("n_warnings", 0))],
    ]
    out = table(["", "value"], rows, left=1)
    reasons = s.get("excluded_by_reason") or {}
    if reasons:
        out += "<h3>Exclusions by reason</h3>" + table(
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
            + table(["patient", "row", "reason", "message"], rows, left=4)
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
        f"<div class=scroll><table><tr>{head}</tr>{''.join(rows_html)}</table></div>"
    )


def _testing_html(run: RunData) -> str:
    """Who was tested: patients per repeat, never tested, and why (the authors' 1:1
    folds leave negatives out), from the summary or, for older runs, the folds."""
    from core.runs.summary import fold_coverage

    testing = run.summary.get("testing")
    n = run.summary.get("n_patients") or run.cohort.get("summary", {}).get("n_patients")
    if not testing and n and run.folds:
        n_pos = run.summary.get("n_positive") or run.cohort.get("summary", {}).get("n_positive")
        folds = [{"repeat": f.repeat, "test_patients": f.test_patients} for f in run.folds]
        scheme = run.config.get("train", {}).get("cv_scheme")
        testing = fold_coverage(folds, int(n), int(n_pos or 0), scheme)
    if not testing or not testing.get("per_repeat"):
        return ""
    tested = ", ".join(f"repeat {r['repeat']}: {r['tested']}" for r in testing["per_repeat"])
    return (
        f"<p>Patients tested ({e(testing.get('cv_scheme') or '?')} folds): {e(tested)}; "
        f"never tested: {e(testing.get('never_tested'))}. {e(testing.get('why', ''))}</p>"
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
            + caveat_html(run)  # a cohort too small for the numbers to mean much
            + table(["metric", "mean ± SD over folds", "folds"], metrics_rows)
            + _testing_html(run),
        ),
        (
            "ROC and precision-recall curves",
            '<div class="plots">' + roc_section(run) + pr_section(run) + "</div>",
        ),
        ("Calibration", '<div class="plots">' + calibration_section(run) + "</div>"),
        ("Confusion matrix", _confusion_section(run)),
        ("Clinical baselines beside the image model", _baselines_section(run, stats)),
        ("Per-fold results", _folds_section(run)),
        ("Training curves per fold", history_section(run)),
        ("Grad-CAM: the most confident errors and successes", gallery_section(run)),
        ("Cohort", _cohort_section(run)),
        ("Out-of-fold predictions per infant", _infants_section(run)),
        ("Configuration", "<pre>" + e(json.dumps(run.config, indent=2, default=str)) + "</pre>"),
    ]
    body = "".join(f"<h2>{e(title)}</h2>{html}" for title, html in sections)
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>BPD Studio report – {e(run.name)}</title><style>{CSS}</style></head><body>"
        f"<h1>BPD Studio report</h1><p class=muted>Run {e(run.name)}</p>"
        f'<p class="notice">{e(NOTICE)}</p>{body}'
        f'<p class="notice">{e(NOTICE)}</p></body></html>\n'
    )


def write_report(run_dir: str | Path, html_path: str | Path | None = None) -> Path:
    """Render RUN_DIR into one HTML file (default: the run folder's report.html), atomically."""
    from core.runs.folder import RunFolder

    run = load_run(run_dir)
    target = Path(html_path) if html_path else RunFolder(run.run_dir).report_path
    return atomic_write_text(target, render_report(run))
