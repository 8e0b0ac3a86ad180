"""The report's Grad-CAM gallery: the run's most confident errors and successes.

The maps come from the run's explanations cache (`bpd explain RUN --all`,
core.explain.batch): each infant explained by the fold model that never trained on it.
The overlay PNGs there are drawn at the radiograph's resolution; the report embeds small
JPEG copies as data: URIs so it stays one self-contained file.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from pathlib import Path

from core.evaluation.report_html import e, num
from core.evaluation.run_data import RunData

THUMB_W, THUMB_H = 220, 320  # the largest embedded thumbnail (three fit a 760 px page)
PER_GROUP = 3  # infants shown per outcome class
GROUPS = (  # (class, title, most confident first: highest probability?)
    ("FP", "False positives, highest probability first", True),
    ("FN", "False negatives, lowest probability first", False),
    ("TP", "True positives, highest probability first", True),
    ("TN", "True negatives, lowest probability first", False),
)


@dataclass(frozen=True)
class Explained:
    patient_id: str
    label: int
    prob: float  # the explaining fold's out-of-fold probability
    fold_id: str
    empty: bool
    png: Path

    def outcome_class(self, threshold: float) -> str:
        from core.explain.overlay import outcome_class

        return outcome_class(self.label, self.prob, threshold)


def thumbnail_uri(png: Path, size: tuple[int, int] = (THUMB_W, THUMB_H)) -> tuple[str, int, int]:
    """A small JPEG of an overlay as a data: URI, with its width and height."""
    from PIL import Image

    with Image.open(png) as im:
        im = im.convert("RGB")
        im.thumbnail(size, Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=82, optimize=True)
        w, h = im.size
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), w, h


def _explained(cached) -> list[Explained]:
    out = []
    for pid, row in cached.rows.items():
        try:
            prob = float(row["oof_prob"] if row.get("oof_prob") else row["model_prob"])
            label = int(row["label"])
        except (KeyError, ValueError):
            continue  # an infant without an outcome cannot be an error or a success
        if math.isnan(prob):
            continue
        empty = str(row.get("empty", "0")) == "1"
        out.append(Explained(pid, label, prob, row.get("fold_id", ""), empty,
                             cached.overlay_png(pid)))  # fmt: skip
    return out


def pick(explained: list[Explained], threshold: float) -> dict[str, list[Explained]]:
    """Per class (FP, FN, TP, TN), the PER_GROUP infants the model was surest about."""
    picked = {}
    for cls, _, highest_first in GROUPS:
        members = [x for x in explained if x.outcome_class(threshold) == cls]
        members.sort(key=lambda x: (-x.prob if highest_first else x.prob, x.patient_id))
        picked[cls] = members[:PER_GROUP]
    return picked


def _figure(x: Explained, threshold: float) -> str:
    outcome = "positive" if x.label else "negative"
    caption = (
        f"<b>{e(x.patient_id)}</b> · p = {num(x.prob)} · {x.outcome_class(threshold)}<br>"
        f"true outcome {outcome} · fold {e(x.fold_id)}"
        + ("<br><b>empty map</b> (all zero): no region raised the score" if x.empty else "")
    )
    try:
        uri, w, h = thumbnail_uri(x.png)
    except OSError as exc:  # deleted or damaged by hand: the report is still written
        missing = f"<p class=muted>overlay not readable ({e(type(exc).__name__)})</p>"
        return f"<figure class=cam>{missing}<figcaption>{caption}</figcaption></figure>"
    alt = f"Grad-CAM of infant {x.patient_id}, p = {num(x.prob)}"
    return (
        f'<figure class=cam><img src="{uri}" width="{w}" height="{h}" alt="{e(alt)}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def gallery_section(run: RunData) -> str:
    from core.explain.batch import run_explanations

    name = e(run.run_dir)
    try:
        cached = run_explanations(run.run_dir)
    except (OSError, ValueError, KeyError) as exc:  # a damaged cache must not stop the report
        return (
            f"<p>The Grad-CAM cache could not be read ({e(exc)}). Write it again, then the "
            f"report:</p><pre>bpd explain {name} --all --force\nbpd report {name}</pre>"
        )
    if cached is None:
        return (
            "<p>No Grad-CAM maps in this run folder yet. Add them, then write the report "
            f"again:</p><pre>bpd explain {name} --all\nbpd report {name}</pre>"
        )
    settings = cached.settings
    threshold = float(settings.get("threshold", 0.5))
    picked = pick(_explained(cached), threshold)
    scaling = settings.get("scaling")
    scale = (
        "Colours share one scale over the run's explained infants (red = the largest map "
        "of the run), so a weak map looks weak."
        if scaling == "shared"
        else "Each map is scaled to its own maximum: a weak map looks as hot as a strong one."
    )
    intro = (
        f"Out-of-fold Grad-CAM of repeat {e(settings.get('repeat', 0))}: each infant is "
        "explained by the fold model that never trained on it, and p is that model's "
        f"probability; classes at threshold {num(threshold)}. {scale} "
        f"{len(cached.rows)} infants explained (`bpd explain`); the full-size overlays are in "
        f"{e(cached.folder)}."
    )
    parts = [f"<p class=muted>{intro}</p>"]
    for title, classes in (("Most confident errors", ("FP", "FN")),
                           ("Most confident successes", ("TP", "TN"))):  # fmt: skip
        parts.append(f"<h3>{e(title)}</h3>")
        for cls, sub, _ in GROUPS:
            if cls not in classes:
                continue
            figures = "".join(_figure(x, threshold) for x in picked[cls])
            body = figures or "<p class=muted>none</p>"
            parts.append(f"<h4>{e(sub)}</h4><div class=gallery>{body}</div>")
    return "".join(parts)
