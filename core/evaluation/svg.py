"""Hand-written SVG line plots for the self-contained HTML report.

No plotting library: the report must open anywhere, offline, and every label that came
from an input file is escaped here like everywhere else in the HTML.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


@dataclass
class Series:
    name: str
    x: list[float]
    y: list[float]
    color: str = PALETTE[0]
    width: float = 2.0
    dash: str | None = None
    markers: bool = False
    opacity: float = 1.0


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About n round-numbered ticks covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks, t = [], first
    while t <= hi + 1e-9 * step:
        ticks.append(round(t, 10))
        t += step
    return ticks


def _fmt(v: float) -> str:
    return f"{v:g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.1e}"


def data_range(series: list[Series], axis: str, pad: float = 0.05) -> tuple[float, float]:
    vals = [v for s in series for v in getattr(s, axis) if v is not None and math.isfinite(v)]
    if not vals:
        return 0.0, 1.0
    lo, hi = min(vals), max(vals)
    if hi == lo:
        return lo - 0.5, hi + 0.5
    span = hi - lo
    return lo - pad * span, hi + pad * span


def line_plot(
    series: list[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    width: int = 440,
    height: int = 340,
    diagonal: bool = False,
    legend: str | None = "top",
    marks: list[tuple[float, str]] | None = None,
    band: tuple[float, float, str] | None = None,
    integer_x: bool = False,
) -> str:
    """One SVG element: axes, grid, optional y = x diagonal, one polyline per series.
    `marks`: vertical dashed lines at x, labelled along the line (e.g. a training phase
    starting there); `band`: a shaded x interval with a label (e.g. the probe epochs);
    `integer_x`: x ticks on whole numbers only (epochs)."""
    left, right, top, bottom = 58, 14, 30, 46
    if legend == "right":  # outside the axes: nothing drawn under it
        right += 120
    pw, ph = width - left - right, height - top - bottom
    x0, x1 = x_range or data_range(series, "x", pad=0.0)
    y0, y1 = y_range or data_range(series, "y")

    def sx(v: float) -> float:
        return left + (v - x0) / (x1 - x0) * pw

    def sy(v: float) -> float:
        return top + ph - (v - y0) / (y1 - y0) * ph

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        'font-family="sans-serif" font-size="11">',
        f'<text x="{width / 2:.1f}" y="18" text-anchor="middle" font-size="13" '
        f'font-weight="bold">{escape(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fff" stroke="#999"/>',
    ]
    x_ticks = nice_ticks(x0, x1)
    if integer_x:  # no "epoch 0.5"
        x_ticks = [t for t in x_ticks if float(t).is_integer()] or [
            float(v) for v in range(math.ceil(x0), math.floor(x1) + 1)
        ]
    for t in x_ticks:
        out.append(
            f'<line x1="{sx(t):.1f}" y1="{top}" x2="{sx(t):.1f}" y2="{top + ph}" stroke="#eee"/>'
        )
        out.append(
            f'<text x="{sx(t):.1f}" y="{top + ph + 14}" text-anchor="middle">{_fmt(t)}</text>'
        )
    for t in nice_ticks(y0, y1):
        out.append(
            f'<line x1="{left}" y1="{sy(t):.1f}" x2="{left + pw}" y2="{sy(t):.1f}" stroke="#eee"/>'
        )
        out.append(f'<text x="{left - 5}" y="{sy(t) + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
    out.append(
        f'<text x="{left + pw / 2:.1f}" y="{height - 8}" text-anchor="middle">'
        f"{escape(x_label)}</text>"
    )
    out.append(
        f'<text transform="translate(14,{top + ph / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle">{escape(y_label)}</text>'
    )
    if band is not None:  # under the series, so lines stay on top
        b0, b1 = (min(max(v, x0), x1) for v in band[:2])
        out.append(
            f'<rect class="band" x="{sx(b0):.1f}" y="{top}" width="{max(sx(b1) - sx(b0), 0):.1f}" '
            f'height="{ph}" fill="#000" fill-opacity="0.06"><title>{escape(band[2])}</title></rect>'
        )
        out.append(
            f'<text x="{sx(b0) + 4:.1f}" y="{top + ph - 6}" fill="#555">{escape(band[2])}</text>'
        )
    for mx, label in marks or []:
        if not x0 <= mx <= x1:
            continue
        out.append(
            f'<line class="mark" x1="{sx(mx):.1f}" y1="{top}" x2="{sx(mx):.1f}" y2="{top + ph}" '
            'stroke="#555" stroke-dasharray="5 3"/>'
        )
        out.append(  # along the line: marks a few epochs apart never overlap
            f'<text transform="translate({sx(mx) + 3:.1f},{top + 4}) rotate(90)" '
            f'fill="#555" font-size="10">{escape(label)}</text>'
        )
    if diagonal:
        out.append(
            f'<line x1="{sx(max(x0, y0)):.1f}" y1="{sy(max(x0, y0)):.1f}" '
            f'x2="{sx(min(x1, y1)):.1f}" y2="{sy(min(x1, y1)):.1f}" stroke="#888" '
            'stroke-dasharray="4 3"/>'
        )
    for s in series:
        pts = [
            (x, y)
            for x, y in zip(s.x, s.y, strict=True)
            if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)
        ]
        if not pts:
            continue
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        out.append(
            f'<polyline points="{path}" fill="none" stroke="{s.color}" '
            f'stroke-width="{s.width}" stroke-opacity="{s.opacity}"{dash}>'
            f"<title>{escape(s.name)}</title></polyline>"
        )
        if s.markers:
            out.extend(
                f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3.5" fill="{s.color}"/>'
                for x, y in pts
            )
    if legend:  # "top"/"bottom" inside the right corner, or "right" outside the axes
        named = [s for s in series if s.name][:12]
        lx = left + pw + 10 if legend == "right" else left + pw - 120
        for i, s in enumerate(named):
            if legend == "bottom":
                ly = top + ph - 8 - 14 * (len(named) - 1 - i)
            else:
                ly = top + 14 + 14 * i
            out.append(
                f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 16}" '
                f'y2="{ly - 4}" stroke="{s.color}" stroke-width="2.5"/>'
            )
            out.append(f'<text x="{lx + 20}" y="{ly}">{escape(s.name[:22])}</text>')
    out.append("</svg>")
    return "\n".join(out)
