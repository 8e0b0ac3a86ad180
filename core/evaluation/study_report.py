"""The study report: one self-contained HTML file comparing a study's arms.

The paper's table (AUROC, balanced accuracy, F1 as mean ± SD over folds per arm, the
IRDS and clinical baselines as rows), paired comparisons of every arm with the best
(core.evaluation.study_report_stats), and a forest plot (inline SVG). Every string that
came from an input (arm names, paths, messages) is escaped.
The caller (core.study.report) says which arms exist; this module reads their run
folders through core.evaluation.run_data.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from core.atomic import atomic_write_text
from core.errors import BPDError
from core.evaluation.report import CSS, NOTICE
from core.evaluation.report_html import e, mean_sd, num, table
from core.evaluation.run_data import RunData, load_run
from core.evaluation.study_report_stats import compare_arms, compare_baseline, corrected_ci
from core.evaluation.svg import nice_ticks
from core.scoring.metrics import summarize_folds

# arm names stay on one line; the forest plot keeps its width (up to the page's)
STUDY_CSS = "td:first-child{white-space:nowrap} div.forest{max-width:760px}"
TABLE_METRICS = (("auroc", "AUROC"), ("balanced_accuracy", "Balanced accuracy"), ("f1", "F1"))
BASELINES = ("irds_alone", "clinical_logistic")
TESTS = (
    "Wilcoxon (repeats): exact two-sided signed-rank test on the paired repeat means of "
    "the fold AUROCs; with r repeats p cannot be below 2/2^r (6 repeats: 0.031).",
    "Corrected t (folds): Nadeau & Bengio's corrected resampled t-test over all k x r "
    "paired folds; the variance is inflated by n_test/n_train because folds share "
    "training patients (df = k x r - 1). The fairest of the three for repeated CV.",
    "DeLong (pooled): DeLong's test on each patient's out-of-fold probability averaged "
    "over repeats (an ensemble AUROC); counts patient sampling only, not training "
    "variance, so it is optimistic.",
)


@dataclass(frozen=True)
class StudyArm:
    name: str  # its folder name in the study
    title: str  # init and strategy in words
    status: str  # "finished", "unfinished", "skipped", "not started"
    run_dir: Path | None
    note: str = ""  # why skipped, etc.


def _p(x: float | None) -> str:
    if x is None:
        return "–"
    return "<0.0001" if x < 1e-4 else f"{x:.4f}"


def _load(arms: list[StudyArm]) -> tuple[dict[str, RunData], dict[str, str]]:
    runs, problems = {}, {}
    for arm in arms:
        if arm.status != "finished" or arm.run_dir is None:
            continue
        try:
            runs[arm.name] = load_run(arm.run_dir)
        except BPDError as exc:
            problems[arm.name] = str(exc)
    return runs, problems


def _stats(run: RunData) -> dict[str, dict]:
    stats = summarize_folds([f.metrics for f in run.folds])
    for name, _ in TABLE_METRICS:
        if isinstance(run.summary.get(name), dict):
            stats[name] = run.summary[name]
    return stats


def _mean_auroc(run: RunData) -> float:
    m = (_stats(run).get("auroc") or {}).get("mean")
    return -math.inf if m is None else float(m)


def _ensemble(summary: dict[str, Any]) -> float | None:
    """The AUROC of repeat-averaged out-of-fold probabilities (summary.json names it
    ensemble_auroc; older runs pooled_auroc)."""
    return summary.get("ensemble_auroc", summary.get("pooled_auroc"))


def _baselines(run: RunData) -> dict[str, dict]:
    base = run.summary.get("baselines") or {}
    return {k: base[k] for k in BASELINES if isinstance(base.get(k), dict) and base[k].get("auroc")}


def _table_section(arms, runs, best) -> str:
    header = ["arm", "init and strategy", *(t for _, t in TABLE_METRICS), "ensemble AUROC",
              "folds", "status"]  # fmt: skip
    rows = []
    for arm in arms:
        run = runs.get(arm.name)
        if run is None:
            note = f": {arm.note}" if arm.note else ""
            status = arm.status + (" (why: above)" if arm.status == "skipped" and note else note)
            rows.append([e(arm.name), e(arm.title), "–", "–", "–", "–", "–", e(status)])
            continue
        stats = _stats(run)
        name = f"<b>{e(arm.name)}</b> (best)" if arm.name == best else e(arm.name)
        rows.append(
            [name, e(arm.title)]
            + [mean_sd(stats.get(m)) for m, _ in TABLE_METRICS]
            + [num(_ensemble(run.summary)), str(len(run.folds)), "finished"]
        )
    if best:
        for key, b in _baselines(runs[best]).items():
            rows.append([e(key), e(b.get("title", key)), mean_sd(b.get("auroc")), "–", "–",
                         num(b.get("pooled_auroc")), str(len(b.get("folds") or [])),
                         "clinical baseline, same folds"])  # fmt: skip
    return (
        table(header, rows, left=2, text_cols=(7,))
        + _missing_baselines(runs, best)
        + (
            "<p class=muted>Mean ± SD over folds (sample SD). Ensemble AUROC: the AUROC of each "
            "patient's out-of-fold probability averaged over the repeats that tested them (one "
            "number per arm, not a fold mean). Baselines: the IRDS grade alone as the score, "
            "and a logistic regression on the recorded clinical variables, fit on each "
            "training fold; they have no class threshold here, so no balanced accuracy or F1."
            "</p>"
        )
    )


def _missing_baselines(runs: dict[str, RunData], best: str | None) -> str:
    """Say why a baseline row is absent (no IRDS grade recorded, ...), never silently."""
    if not best:
        return ""
    base = runs[best].summary.get("baselines") or {}
    if base.get("error"):
        return f"<p class=muted>No clinical baselines: {e(base['error'])}</p>"
    notes = [
        f"{b.get('title', key)}: not computed ({b['skipped']})"
        for key in BASELINES
        if isinstance(b := base.get(key), dict) and b.get("skipped")
    ]
    if not base:
        notes = ["No clinical baselines: the runs' summaries have none"]
    return "".join(f"<p class=muted>{e(n)}.</p>" for n in notes)


def _comparison_rows(best: str, runs: dict[str, RunData]) -> list[list[str]]:
    rows = []
    targets: list[tuple[str, dict[str, Any]]] = [
        (name, compare_arms(runs[best], run)) for name, run in runs.items() if name != best
    ]
    targets += [(key, compare_baseline(runs[best], b)) for key, b in _baselines(runs[best]).items()]
    for name, c in targets:
        if "error" in c:
            rows.append([e(name), "–", "–", "–", "–", "–", "–", e(c["error"])])
            continue
        w, t, d = c["wilcoxon"], c.get("corrected_t"), c.get("delong") or {}
        t_cell = (
            f"{num(t['mean_difference'])} [{num(t['ci_low'])}, {num(t['ci_high'])}]" if t else "–"
        )
        d_cell = (
            f"{num(d['difference'])} [{num(d['ci_low'])}, {num(d['ci_high'])}]"
            if "difference" in d else "–"
        )  # fmt: skip
        notes = []
        if c["n_repeats"] < 6:
            notes.append(f"{c['n_repeats']} repeat(s): Wilcoxon p ≥ "
                         f"{w['smallest_possible_p']:.3g}")  # fmt: skip
        if "error" in d:
            notes.append(f"no DeLong: {d['error']}")
        rows.append([
            e(name), str(c["n_repeats"]), _p(w["p_value"]), t_cell,
            _p(t["p_value"]) if t else "–", d_cell, _p(d.get("p_value")), e("; ".join(notes)),
        ])  # fmt: skip
    return rows


def _comparisons_section(best: str | None, runs: dict[str, RunData]) -> str:
    if not best or len(runs) + len(_baselines(runs[best])) < 2:
        return "<p>Comparisons need at least two finished arms (or a baseline).</p>"
    header = ["best − arm", "repeats", "Wilcoxon p", "corrected t: ΔAUROC [95% CI]",
              "corrected t p", "DeLong: ΔAUROC [95% CI]", "DeLong p", "notes"]  # fmt: skip
    explained = "".join(f"<li>{e(t)}</li>" for t in TESTS)
    return (
        f"<p>Every arm against the best arm, <b>{e(best)}</b> (highest mean fold AUROC); a "
        "positive difference favours the best arm.</p>"
        + table(header, _comparison_rows(best, runs), text_cols=(7,))
        + f"<ul class=muted>{explained}</ul>"
    )


def forest_plot(rows: list[tuple[str, float, tuple[float, float] | None]], best: str) -> str:
    """Inline SVG: one row per arm, its mean fold AUROC and corrected 95% CI."""
    width, left, right, top, row_h = 760, 250, 30, 34, 24
    height = top + row_h * len(rows) + 44
    lows = [ci[0] for _, _, ci in rows if ci] + [m for _, m, _ in rows] + [0.5]
    highs = [ci[1] for _, _, ci in rows if ci] + [m for _, m, _ in rows] + [0.5]
    x0, x1 = max(0.0, min(lows) - 0.02), min(1.0, max(highs) + 0.02)
    x0, x1 = (x0, x1) if x1 > x0 else (0.0, 1.0)
    pw = width - left - right

    def sx(v: float) -> float:
        return left + (min(max(v, x0), x1) - x0) / (x1 - x0) * pw

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="forest plot of AUROC by arm" '
        'font-family="sans-serif" font-size="13">',
        f'<text x="{width / 2:.0f}" y="18" text-anchor="middle" font-weight="bold">'
        "Mean fold AUROC with 95% CI (corrected resampled t)</text>",
    ]
    bottom = top + row_h * len(rows)
    for t in nice_ticks(x0, x1):
        out.append(f'<line x1="{sx(t):.1f}" y1="{top}" x2="{sx(t):.1f}" y2="{bottom}" '
                   'stroke="#eee"/>')  # fmt: skip
        out.append(f'<text x="{sx(t):.1f}" y="{bottom + 16}" text-anchor="middle">{t:g}</text>')
    out.append(f'<line x1="{sx(0.5):.1f}" y1="{top}" x2="{sx(0.5):.1f}" y2="{bottom}" '
               'stroke="#888" stroke-dasharray="4 3"/>')  # fmt: skip
    out.append(f'<text x="{left + pw / 2:.0f}" y="{bottom + 34}" text-anchor="middle">'
               "AUROC (dashed: chance, 0.5)</text>")  # fmt: skip
    for i, (name, mean, ci) in enumerate(rows):
        y = top + row_h * i + row_h / 2
        color = "#d62728" if name == best else "#1f77b4"
        out.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">'
                   f"{escape(name[:36])}</text>")  # fmt: skip
        if ci:
            out.append(f'<line x1="{sx(ci[0]):.1f}" y1="{y:.1f}" x2="{sx(ci[1]):.1f}" '
                       f'y2="{y:.1f}" stroke="{color}" stroke-width="2"/>')  # fmt: skip
        label = f"{mean:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
        out.append(f'<rect x="{sx(mean) - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" '
                   f'fill="{color}"><title>{escape(name)}: {label}</title></rect>')  # fmt: skip
    out.append("</svg>")
    return "\n".join(out)


def _forest_section(arms, runs, best) -> str:
    rows = []
    for arm in arms:
        run = runs.get(arm.name)
        if run is not None and _mean_auroc(run) > -math.inf:
            rows.append((arm.name, _mean_auroc(run), corrected_ci(run)))
    if best:
        for key, b in _baselines(runs[best]).items():
            values = [f.get("auroc") for f in b.get("folds") or [] if f.get("auroc") is not None]
            mean = (b.get("auroc") or {}).get("mean")
            if mean is None:
                continue
            ci = None
            if len(values) >= 2:
                from core.evaluation.statistics import corrected_resampled_t
                from core.evaluation.study_report_stats import split_sizes

                n_train, n_test = split_sizes(runs[best])
                r = corrected_resampled_t(values, n_train=n_train, n_test=n_test)
                ci = (r.ci_low, r.ci_high)
            rows.append((key, float(mean), ci))
    if not rows:
        return "<p>No finished arm yet.</p>"
    note = ("The interval is the mean fold AUROC ± t(df = k x r − 1) x the corrected "
            "standard error; with few folds it is wide, which is the honest answer.")  # fmt: skip
    return f"<div class=forest>{forest_plot(rows, best or '')}</div><p class=muted>{e(note)}</p>"


def _identical_folds_note(runs: dict[str, RunData]) -> str:
    """Say whether every finished arm tested the same patients in every fold."""
    if len(runs) < 2:
        return ""
    ref_name, ref = next(iter(runs.items()))
    ref_folds = {f.fold_id: sorted(f.test_patients) for f in ref.folds}
    differ = [
        name for name, run in runs.items()
        if {f.fold_id: sorted(f.test_patients) for f in run.folds} != ref_folds
    ]  # fmt: skip
    if differ:
        return (f'<p class="notice">Arms {e(", ".join(differ))} tested other patients than '
                f"{e(ref_name)}: their comparisons are not paired.</p>")  # fmt: skip
    n = len(ref_folds)
    return (f"<p>All {len(runs)} finished arms tested the same patients in each of the "
            f"{n} folds (same folds and seeds).</p>")  # fmt: skip


def render_study_report(
    title: str, arms: list[StudyArm], record: dict[str, Any], notes: list[str] = ()
) -> str:
    runs, problems = _load(arms)
    arms = [
        StudyArm(a.name, a.title, "unreadable", a.run_dir, problems[a.name])
        if a.name in problems else a
        for a in arms
    ]  # fmt: skip
    best = max(runs, key=lambda n: _mean_auroc(runs[n])) if runs else None
    done = sum(a.status == "finished" for a in arms)
    head = (f"{done} of {len(arms)} arms finished; "
            + ", ".join(f"{sum(a.status == s for a in arms)} {s}"
                        for s in ("unfinished", "skipped", "not started", "unreadable")
                        if any(a.status == s for a in arms)))  # fmt: skip
    skipped = [a for a in arms if a.status == "skipped"]
    skipped_html = "".join(f"<li>{e(a.name)}: {e(a.note)}</li>" for a in skipped)
    sections = [
        ("The study",
         f"<p>{e(head.rstrip('; '))}.</p>" + _identical_folds_note(runs)
         + "".join(f"<p class=muted>{e(n)}</p>" for n in notes)
         + (f"<p class=notice>Skipped arms:</p><ul>{skipped_html}</ul>" if skipped else "")),
        ("Results per arm", _table_section(arms, runs, best)),
        ("Each arm against the best", _comparisons_section(best, runs)),
        ("Forest plot", _forest_section(arms, runs, best)),
        ("Study configuration",
         "<details><summary>study.json</summary><pre>"
         + e(json.dumps(record, indent=2, default=str)) + "</pre></details>"),
    ]  # fmt: skip
    body = "".join(f"<h2>{e(t)}</h2>{html}" for t, html in sections)
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        f"<title>BPD Studio study – {e(title)}</title><style>{CSS}{STUDY_CSS}</style></head><body>"
        f"<h1>BPD Studio study</h1><p class=muted>Study {e(title)}</p>"
        f'<p class="notice">{e(NOTICE)}</p>{body}'
        f'<p class="notice">{e(NOTICE)}</p></body></html>\n'
    )


def write_study_report(
    path: str | Path, title: str, arms: list[StudyArm], record: dict[str, Any],
    notes: list[str] = (),
) -> Path:  # fmt: skip
    return atomic_write_text(Path(path), render_study_report(title, arms, record, notes))
