"""Small HTML helpers for the report: escaping and number formatting, tables."""

from __future__ import annotations

import math
from html import escape
from typing import Any

import numpy as np


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


def table(
    header: list[str], rows: list[list[str]], left: int = 1, text_cols: tuple[int, ...] = ()
) -> str:
    """HTML table from already-escaped cells; the first `left` columns and `text_cols`
    align left (text), the rest right (numbers). Wrapped in a box that scrolls sideways
    when the table is wider than the page (the report stays readable at 760 px)."""

    def cells(tag: str, row: list[str]) -> str:
        return "".join(
            f"<{tag}{' class=l' if i < left or i in text_cols else ''}>{c}</{tag}>"
            for i, c in enumerate(row)
        )

    body = "".join(f"<tr>{cells('td', r)}</tr>" for r in rows)
    return f"<div class=scroll><table><tr>{cells('th', header)}</tr>{body}</table></div>"


def caveat_html(run: Any) -> str:
    """The small-cohort caveat (core.runs.summary) as a notice, or "": from the run's summary,
    or computed from the folds for a run written before summaries carried it."""
    from core.runs.summary import small_cohort_caveat

    summary = run.summary or {}
    if "caveat" in summary:
        text = summary["caveat"]
    else:
        counts = [(int(f.labels.sum()), int(len(f.labels) - f.labels.sum())) for f in run.folds]
        text = small_cohort_caveat([c for c in counts if sum(c)])
    return f'<p class="notice caveat">{e(text)}</p>' if text else ""
