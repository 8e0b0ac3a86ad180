"""An automatic chest box without any model: thresholds, morphology, projection profiles.

The lungs are the large dark regions enclosed by brighter tissue; the air around the body,
wide black borders and the gaps under the arms are dark too but reach the image's edge or
lie off-centre. So: normalise the grey values, threshold at Otsu's level, open the dark
mask so thin dark bridges break, drop dark regions that touch the edge, keep the large
ones near the middle (the two lungs), and take their bounding box. The box of the lung
fields misses the chest wall, so it is widened to where the column profile of the body
(bright tissue) falls off on either side, within a limit, and grown a little at the top
and bottom (apices, costophrenic angles).

A suggestion only: `bpd cohort autobox` writes it with source=auto, and nothing uses it
until a person accepts or corrects it (docs/method.md, "Crops").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from core.cohort.crops import Crop, CropEntry, CropTable
from core.cohort.source import CohortSource
from core.errors import BPDError, InputError

WORK_SIZE = 256  # long side the search runs at (a 3000 px radiograph takes ~50 ms)
MIN_LUNG_AREA = 0.01  # a lung component covers at least 1% of the image
TOP_MARGIN = 0.04  # fractions of the lung box's height / width added around it
BOTTOM_MARGIN = 0.02
SIDE_MARGIN = 0.06
BACKGROUND_LEVEL = 0.85  # background: below 0.85 x the image's Otsu level, touching the edge
CHEST_ASPECT = 0.9  # height / width of the lung fields, used when only part was found
# Bump when the method or a constant above changes: a model trained on accepted automatic
# boxes records it (core.cohort.crop_policy), so a prediction's autobox can be checked
AUTOBOX_VERSION = 1


def parameters() -> dict[str, float | int]:
    """The method's settings, as a model card records them."""
    return {"work_size": WORK_SIZE, "min_lung_area": MIN_LUNG_AREA, "top_margin": TOP_MARGIN,
            "bottom_margin": BOTTOM_MARGIN, "side_margin": SIDE_MARGIN,
            "background_level": BACKGROUND_LEVEL, "chest_aspect": CHEST_ASPECT}  # fmt: skip


@dataclass(frozen=True)
class ChestBox:
    crop: Crop
    found: bool  # False: no lung fields found; the box is the body's width (a fallback)
    note: str = ""


def otsu_threshold(values: np.ndarray, bins: int = 128) -> float:
    """The grey level that best separates two classes (Otsu 1979)."""
    hist, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
    hist = hist.astype(np.float64)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    mean0 = m0 / np.maximum(w0, 1)
    mean1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mean0 - mean1) ** 2
    return float(centres[int(np.argmax(between))])


def _normalised(pixels01: np.ndarray) -> tuple[np.ndarray, float]:
    """Grey values at the working size, stretched to the 1st-99th percentile; the scale."""
    from PIL import Image

    arr = np.asarray(pixels01, dtype=np.float32)
    h, w = arr.shape
    scale = WORK_SIZE / max(h, w)
    if scale < 1:
        size = (max(8, round(w * scale)), max(8, round(h * scale)))
        arr = np.asarray(Image.fromarray(arr).resize(size, Image.Resampling.BILINEAR))
    else:
        scale = 1.0
    lo, hi = np.percentile(arr, [1, 99])
    return np.clip((arr - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32), scale


def _lung_components(g: np.ndarray) -> np.ndarray:
    """Boolean mask of the dark regions enclosed by the body near the image's middle."""
    from scipy import ndimage

    h, w = g.shape
    smooth = ndimage.uniform_filter(g, size=3)
    # the air around the body (and black borders): very dark and reaching the edge; the
    # lungs' threshold is then found among the body's own grey values
    labels, _ = ndimage.label(smooth < BACKGROUND_LEVEL * otsu_threshold(smooth))
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    body = ~np.isin(labels, edge[edge > 0])
    inner = smooth[body] if body.sum() > 0.2 * h * w else smooth.ravel()
    dark = (smooth < otsu_threshold(inner)) & body
    for radius in (1, 2, 3, 5):  # open harder until the lungs come free of the border
        opened = ndimage.binary_opening(dark, structure=np.ones((2 * radius + 1,) * 2))
        labels, n = ndimage.label(opened)
        if n == 0:
            continue
        edge = set(np.unique(np.concatenate(
            [labels[0], labels[-1], labels[:, 0], labels[:, -1]]
        ))) - {0}  # fmt: skip
        sizes = ndimage.sum_labels(np.ones_like(g), labels, index=np.arange(1, n + 1))
        keep = []
        for label, size in enumerate(sizes, start=1):
            if label in edge or size < MIN_LUNG_AREA * h * w:
                continue
            ys, xs = np.nonzero(labels == label)
            cy, cx = ys.mean() / h, xs.mean() / w
            if 0.1 < cx < 0.9 and 0.1 < cy < 0.75:
                keep.append((size, label))
        if keep:
            keep = sorted(keep, reverse=True)[:2]  # the two lungs (or one, if merged)
            return np.isin(labels, [label for _, label in keep])
    return np.zeros_like(dark)


def _body_sides(g: np.ndarray, top: int, bottom: int) -> tuple[int, int]:
    """Columns where the body (bright tissue) ends, from the column profile of the rows
    between `top` and `bottom`: the outermost columns still at half the profile's height."""
    profile = g[top:bottom].mean(axis=0)
    level = profile.min() + 0.5 * (np.percentile(profile, 90) - profile.min())
    body = np.nonzero(profile >= level)[0]
    if body.size == 0:
        return 0, g.shape[1]
    return int(body[0]), int(body[-1]) + 1


def find_chest_box(pixels01: np.ndarray) -> ChestBox:
    """A chest box on the image's own pixel grid (rotation 0, source "auto")."""
    arr = np.asarray(pixels01, dtype=np.float32)
    h, w = arr.shape
    g, scale = _normalised(arr)
    gh, gw = g.shape
    lungs = _lung_components(g)
    if not lungs.any():  # at least the body's width: the borders beside it go
        left, right = _body_sides(g, 0, gh)
        x0, x1 = min(left / scale, w - 2.0), max(right / scale, left / scale + 2.0)
        box = Crop(round(x0, 1), 0, min(round(x1, 1), w), h, source="auto")
        return ChestBox(box, False, "no lung fields found; the box spans the body's width")
    ys, xs = np.nonzero(lungs)
    y0, y1 = float(ys.min()), float(ys.max() + 1)
    left, right = _body_sides(g, int(y0), int(y1))
    # a consolidated (white) lung is not dark: the chest is symmetric about the midline,
    # so the side reaching farthest from it stands for both
    mid = (left + right) / 2
    half = max(mid - xs.min(), xs.max() + 1 - mid) * (1 + SIDE_MARGIN)
    half = min(half, (right - left) / 2 * 1.02)
    x0, x1 = max(0.0, mid - half), min(float(gw), mid + half)
    # lung fields found only in part: a child's chest is about as high as it is wide
    if y1 - y0 < 0.75 * (x1 - x0):
        y1 = min(float(gh), y0 + CHEST_ASPECT * (x1 - x0))
    bh = y1 - y0
    y0 = max(0.0, y0 - TOP_MARGIN * bh)
    y1 = min(float(gh), y1 + BOTTOM_MARGIN * bh)
    box = [v / scale for v in (x0, y0, x1, y1)]
    box = [min(max(0.0, round(v, 1)), lim) for v, lim in zip(box, (w, h, w, h), strict=True)]
    return ChestBox(Crop(*box, source="auto"), True)


def iou(a: Crop, b: Crop) -> float:
    """Intersection over union of two unrotated boxes."""
    ix = max(0.0, min(a.x1, b.x1) - max(a.x0, b.x0))
    iy = max(0.0, min(a.y1, b.y1) - max(a.y0, b.y0))
    inter = ix * iy
    union = (a.x1 - a.x0) * (a.y1 - a.y0) + (b.x1 - b.x0) * (b.y1 - b.y0) - inter
    return inter / union if union > 0 else 0.0


# --- every image of a cohort -----------------------------------------------------------
@dataclass
class AutoboxResult:
    table: CropTable  # the sidecar after this pass
    suggested: int = 0  # new or refreshed automatic boxes
    kept: int = 0  # images a person had boxed already (never overwritten)
    not_found: list[str] = field(default_factory=list)  # no lung fields: whole image
    problems: list[str] = field(default_factory=list)  # unreadable files, with the reason


def table_images(source: CohortSource) -> list[tuple[str, Path]]:
    """(reference as the table writes it, file) of every image the table names, whatever
    the outcome column holds: boxes are drawn before anyone decides on the outcome."""
    from core.cohort.imagepaths import (
        PatternMatcher,
        is_inside,
        normalize_root,
        resolve_reference,
    )
    from core.cohort.mapping import guess_mapping
    from core.cohort.table import read_table

    df = read_table(Path(source.table), source.sheet)
    root = normalize_root(source.images_root or Path(source.table).parent)
    guessed = guess_mapping(df.columns)
    out: list[tuple[str, Path]] = []
    if source.image_pattern or not (source.image_column or guessed.image):
        patient = source.patient_column or guessed.patient_id
        if not patient:
            raise InputError("no image column and no patient id column found", file=source.table)
        matcher = PatternMatcher(root, source.image_pattern)
        for pid in df[patient].dropna().astype(str).str.strip().unique():
            out += [(str(p.relative_to(root)), p) for p in matcher.find(pid) if pid]
        return out
    column = source.image_column or guessed.image
    if column not in df.columns:
        raise InputError(f"image column '{column}' not in the table", file=source.table)
    for cell in df[column].dropna().astype(str):
        path = resolve_reference(cell, root)
        if cell.strip() and is_inside(path, root) and path.is_file():
            out.append((cell.strip(), path))
    return list(dict.fromkeys(out))


def autobox_images(
    images: list[tuple[str, Path]],
    existing: CropTable,
    on_progress: Callable[[int, int], None] | None = None,
) -> AutoboxResult:
    """An automatic box (source=auto) for every image without a person's box; boxes a
    person drew or accepted stay as they are."""
    from core.cohort.crops import file_sha256
    from core.cohort.deskew import deskew
    from core.cohort.images import read_image

    result = AutoboxResult(existing)
    for i, (ref, path) in enumerate(images):
        try:
            sha = file_sha256(path)
            current = existing.entry(sha)
            if current is not None and current.crop.source != "auto":
                result.kept += 1
                continue
            pixels = read_image(path).pixels
            # A suggested screen border (bpd cohort deskew) stays: the box is found on
            # the upright image it gives, so autobox and deskew may run in either order.
            quad = current.crop.quad if current is not None else None
            if quad is not None:
                pixels = deskew(pixels, quad)
            box = find_chest_box(pixels)
        except (OSError, BPDError) as exc:
            result.problems.append(f"{ref}: {getattr(exc, 'detail', exc)}")
            continue
        if not box.found:
            result.not_found.append(ref)
        crop = box.crop if quad is None else replace(box.crop, quad=quad)
        result.table = result.table.with_entry(CropEntry(ref, sha, crop))
        result.suggested += 1
        if on_progress:
            on_progress(i + 1, len(images))
    return result


def compare_boxes(auto: CropTable, reference: CropTable) -> list[tuple[str, float]]:
    """(image, IoU) of every reference box whose image has an automatic box."""
    out = []
    for ref in reference.entries:
        mine = auto.entry(ref.sha256)
        if mine is not None and mine.crop.source in ("auto", "accepted"):
            out.append((ref.image, iou(mine.crop, ref.crop)))
    return out
