"""Find the four-sided border of a radiograph photographed from a monitor or a light box.

A photo of a film or a screen shows the radiograph as a convex quadrilateral in a darker
(monitor bezel, room) or brighter (light box) surround. Classical and offline (numpy and
scipy). At a working size (core.cohort.border_lines) the strongest near-horizontal and
near-vertical straight edges are found; every top/bottom/left/right choice among them is
a candidate quad. A candidate must look like a rectangle seen in perspective (corners
within 25 degrees of square, opposite sides of similar length, 20% of the photo or more,
surround visible beyond every side); each side must be a clear step in grey value of
one polarity (the surround darker, or brighter, than the radiograph all round) along
most of its length; and the band just outside each side must be plain (a bezel or a
light box, not ribs or arms: this is what keeps the body's own edges, inside a film or
on a digital radiograph, from making a quad). Of the best supported candidates the
outermost is taken, and its sides are placed on the full-resolution photo: edge points
found along perpendicular profiles, one straight line fitted to each side, the corners
where they meet.

A digital radiograph has no such border and must give None; a border that is already an
upright rectangle gives None too (nothing to stand upright: the crop box does the rest).
Detection never changes pixels: `bpd cohort deskew` and the app's crop tool show what it
found, and a person accepts it (docs/method.md, "Deskew").
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.cohort.border_lines import (
    EDGE_SLOPE,
    STEP_REACH,
    Line,
    crossing,
    distinct,
    find_lines,
    gradients,
    meet,
    profile,
    working,
)
from core.cohort.crops import Crop, CropEntry, CropTable, apply_crop
from core.cohort.perspective import check_quad, upright_size
from core.errors import BPDError, InputError

MAX_CORNER_SKEW = 25  # degrees a corner's angle may differ from a right angle
MIN_SIDE_RATIO = 0.7  # the shorter of two opposite sides: 70% of the longer or more
MIN_AREA = 0.2  # the radiograph covers at least 20% of the photo
MIN_SPAN = 0.35  # and spans 35% of its width and of its height
MIN_SIDE_SUPPORT = 0.5  # every side: at least half its length a clear edge of one polarity
MIN_CONFIDENCE = 0.7  # the mean over the four sides
UPRIGHT_TOLERANCE = 0.015  # corners within 1.5% of the diagonal of an upright rectangle
MIN_SURROUND = 0.02  # every corner 2% of the photo's size inside it: surround on all sides
TIE = 0.03  # supports this close are a tie, settled by area
SURROUND_BAND = 0.03  # the band outside each side that must be plain: 3% of the photo
MAX_CLUTTER = 0.05  # at most 5% of it on a clear edge


@dataclass(frozen=True)
class Border:
    """A quad (8 numbers, clockwise from top-left, on the photo's pixel grid; see
    core.cohort.perspective) and how convincing it is: the mean share of the four sides'
    length that is a clear edge of the surround's polarity (0 to 1)."""

    quad: tuple[float, ...]
    confidence: float

    def crop(self, source: str = "auto") -> Crop:
        """The whole upright radiograph as a crop (box = the upright grid)."""
        h, w = upright_size(self.quad)
        return Crop(0, 0, w, h, source=source, quad=self.quad)


# --- the best quad among the lines ---------------------------------------------------------
def _plausible(p: np.ndarray, shape: tuple[int, int]) -> bool:
    """Four corners (TL, TR, BR, BL) that can be a photographed radiograph: inside the
    photo with some surround beyond every side (a side along the photo's edge shows no
    border; a digital radiograph's own black margins make such quads), convex and
    clockwise, large enough."""
    h, w = shape
    rel = p / (w, h)
    if rel.min() < MIN_SURROUND or rel.max() > 1 - MIN_SURROUND:
        return False
    edges = np.roll(p, -1, axis=0) - p
    after = np.roll(edges, -1, axis=0)
    if not (edges[:, 0] * after[:, 1] - edges[:, 1] * after[:, 0] > 0).all():
        return False
    lengths = np.hypot(edges[:, 0], edges[:, 1])  # top, right, bottom, left
    if min(lengths[0], lengths[2]) < MIN_SPAN * w or min(lengths[1], lengths[3]) < MIN_SPAN * h:
        return False
    # a rectangle in perspective: corners near square, opposite sides of similar length
    cosines = -(edges * after).sum(axis=1) / (lengths * np.roll(lengths, -1))
    if np.abs(cosines).max() > math.cos(math.radians(90 - MAX_CORNER_SKEW)):
        return False
    if min(lengths[0] / lengths[2], lengths[2] / lengths[0], lengths[1] / lengths[3],
           lengths[3] / lengths[1]) < MIN_SIDE_RATIO:  # fmt: skip
        return False
    return _area(p) >= MIN_AREA * w * h


def _area(p: np.ndarray) -> float:
    """Area of the polygon p [n, 2] (shoelace)."""
    x, y = p[:, 0], p[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _clutter(p: np.ndarray, mag: np.ndarray) -> float:
    """The most cluttered side's share of clear edges in the band just outside it: a
    bezel, a light box or a wall is plain there, a radiograph (ribs, arms) is not."""
    from scipy import ndimage

    band = np.arange(STEP_REACH + 2, STEP_REACH + 2 + max(4.0, SURROUND_BAND * max(mag.shape)))
    worst = 0.0
    for a, b in zip(p, np.roll(p, -1, axis=0), strict=True):
        length = float(np.hypot(*(b - a)))
        outward = np.array([b[1] - a[1], -(b[0] - a[0])]) / length
        t = np.linspace(0.1, 0.9, max(8, round(0.8 * length)))
        pts = a + t[:, None] * (b - a)
        xs = pts[None, :, 0] + band[:, None] * outward[0]
        ys = pts[None, :, 1] + band[:, None] * outward[1]
        values = ndimage.map_coordinates(mag, [ys - 0.5, xs - 0.5], order=1, cval=np.nan)
        seen = values[np.isfinite(values)]
        if seen.size:
            worst = max(worst, float(np.mean(seen > EDGE_SLOPE)))
    return worst


def _best_quad(horizontal: list[Line], vertical: list[Line], mag: np.ndarray):
    """(support, corners [4, 2], polarity) of the most convincing quad, or None."""
    shape = mag.shape
    passed = []
    # lines in order down the photo's middle column and across its middle row: the
    # first of a pair is the top (left) side, the second the bottom (right)
    horizontal = sorted(horizontal, key=lambda ln: crossing(ln, shape))
    vertical = sorted(vertical, key=lambda ln: crossing(ln, shape))
    corner = {(i, j): meet(hl, vl) for i, hl in enumerate(horizontal)
              for j, vl in enumerate(vertical)}  # fmt: skip
    for i_top, i_bottom in itertools.combinations(range(len(horizontal)), 2):
        for i_left, i_right in itertools.combinations(range(len(vertical)), 2):
            pts = [corner[i_top, i_left], corner[i_top, i_right], corner[i_bottom, i_right],
                   corner[i_bottom, i_left]]  # fmt: skip
            if any(c is None for c in pts):
                continue
            p = np.array(pts)
            if not _plausible(p, shape):
                continue
            sides = ((horizontal[i_top], p[0], p[1], -1.0),
                     (vertical[i_right], p[1], p[2], 1.0),
                     (horizontal[i_bottom], p[2], p[3], 1.0),
                     (vertical[i_left], p[3], p[0], -1.0))  # fmt: skip
            for polarity in (1.0, -1.0):
                support = np.array([ln.share(a, b, out, polarity) for ln, a, b, out in sides])
                if support.min() >= MIN_SIDE_SUPPORT and support.mean() >= MIN_CONFIDENCE:
                    passed.append((float(support.mean()), _area(p), p, polarity))
    passed = [q for q in passed if _clutter(q[2], mag) <= MAX_CLUTTER]
    if not passed:
        return None
    # of the (nearly) best supported, the outermost: inside a film's border the body's
    # own edges can close a smaller quad just as clearly
    top = max(support for support, *_ in passed)
    support, _, p, polarity = max((q for q in passed if q[0] >= top - TIE), key=lambda q: q[1])
    return support, p, polarity


def is_upright(p: np.ndarray) -> bool:
    """Already an upright rectangle: every corner within UPRIGHT_TOLERANCE of the diagonal
    of the rectangle spanned by the sides' mean positions."""
    left, right = (p[0, 0] + p[3, 0]) / 2, (p[1, 0] + p[2, 0]) / 2
    top, bottom = (p[0, 1] + p[1, 1]) / 2, (p[2, 1] + p[3, 1]) / 2
    rect = np.array([[left, top], [right, top], [right, bottom], [left, bottom]])
    diagonal = math.hypot(right - left, bottom - top)
    return np.hypot(*(p - rect).T).max() < UPRIGHT_TOLERANCE * diagonal


# --- the sides placed on the full-resolution photo -----------------------------------------
def _refine_side(arr: np.ndarray, a: np.ndarray, b: np.ndarray, polarity: float,
                 reach: float) -> tuple[np.ndarray, np.ndarray] | None:  # fmt: skip
    """A line (point, unit direction) fitted to the edge points found on profiles across
    the side a -> b (photo pixels), within `reach` pixels of it; None if too few."""
    from scipy import ndimage

    length = float(np.hypot(*(b - a)))
    along = (b - a) / length
    normal = np.array([along[1], -along[0]])  # outward
    step = 0.5
    offsets = np.arange(-reach, reach + step / 2, step)
    spread = np.linspace(-reach / 4, reach / 4, 5)  # parallel profiles, averaged: less noise
    t = np.linspace(0.06, 0.94, 48) * length
    base = a + t[:, None] * along  # [48, 2]
    grid = (base[:, None, None, :] + spread[None, :, None, None] * along
            + offsets[None, None, :, None] * normal)  # fmt: skip
    values = ndimage.map_coordinates(arr, [grid[..., 1] - 0.5, grid[..., 0] - 0.5], order=1,
                                     mode="nearest").mean(axis=1)  # fmt: skip
    sigma = max(1.0, reach / 6) / step
    slope = polarity * ndimage.gaussian_filter1d(values, sigma, axis=1, order=1)
    k = np.argmax(slope[:, 1:-1], axis=1) + 1
    rows = np.arange(len(k))
    peak = slope[rows, k]
    left, right = slope[rows, k - 1], slope[rows, k + 1]
    denom = left - 2 * peak + right
    shift = np.where(denom < 0, 0.5 * (left - right) / np.where(denom < 0, denom, -1), 0.0)
    found = base + (offsets[k] + np.clip(shift, -1, 1) * step)[:, None] * normal
    keep = peak > 0.3 * np.percentile(peak, 75)
    if keep.sum() < 8:
        return None
    pts = found[keep]
    for _ in range(3):  # a straight line through the points, refitted without outliers
        centre = pts.mean(axis=0)
        direction = np.linalg.svd(pts - centre)[2][0]
        off = (pts - centre) @ np.array([direction[1], -direction[0]])
        near = np.abs(off) <= max(1.0, 3 * 1.4826 * np.median(np.abs(off - np.median(off))))
        if near.sum() < 8 or near.all():
            break
        pts = pts[near]
    return centre, direction


def _intersect(l1: tuple[np.ndarray, np.ndarray], l2: tuple[np.ndarray, np.ndarray]):
    (p, d), (q, e) = l1, l2
    m = np.array([d, -e]).T
    if abs(np.linalg.det(m)) < 1e-9:
        return None
    s = np.linalg.solve(m, q - p)[0]
    return p + s * d


def _refine(arr: np.ndarray, p: np.ndarray, polarity: float, scale: float) -> np.ndarray:
    """The coarse corners [4, 2] (photo pixels) moved onto the full-resolution edges."""
    reach = max(5.0, 4.0 / scale)  # the slack and a Hough line's tilt, in photo pixels
    sides = []
    for a, b in zip(p, np.roll(p, -1, axis=0), strict=True):
        line = _refine_side(arr, a, b, polarity, reach)
        sides.append(line if line is not None else (a, (b - a) / np.hypot(*(b - a))))
    corners = [_intersect(sides[(i - 1) % 4], sides[i]) for i in range(4)]  # left/top -> TL
    if any(c is None for c in corners):
        return p
    out = np.array(corners)
    return out if np.hypot(*(out - p).T).max() <= 2 * reach else p


def find_border(pixels01: np.ndarray) -> Border | None:
    """The photographed radiograph's border, or None when no convincing quad is found."""
    arr = np.asarray(pixels01, dtype=np.float32)
    if arr.ndim != 2 or min(arr.shape) < 32:
        return None
    g, scale = working(arr)
    smooth, gx, gy = gradients(g)
    horizontal, vertical = find_lines(gx, gy)
    best = _best_quad(distinct([profile(ln, smooth) for ln in horizontal], g.shape),
                      distinct([profile(ln, smooth) for ln in vertical], g.shape),
                      np.hypot(gx, gy))  # fmt: skip
    if best is None or is_upright(best[1]):
        return None
    confidence, p, polarity = best
    corners = _refine(arr, p / scale, polarity, scale)
    try:
        quad = check_quad(np.round(corners, 2).ravel())
    except InputError:
        return None
    return Border(quad, round(confidence, 3))


def deskew(pixels01: np.ndarray, quad) -> np.ndarray:
    """The photo [H, W] stood upright: the quad's inside on its upright grid (bilinear)."""
    h, w = upright_size(quad)
    return apply_crop(pixels01, Crop(0, 0, w, h, quad=tuple(quad)))


# --- every image of a cohort ----------------------------------------------------------------
@dataclass
class DeskewResult:
    table: CropTable  # the sidecar after this pass
    found: list[tuple[str, Border]] = field(default_factory=list)  # new suggestions
    not_found: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # a person's box: never overwritten
    problems: list[str] = field(default_factory=list)  # unreadable files, with the reason


def deskew_images(
    images: list[tuple[str, Path]],
    existing: CropTable,
    on_progress: Callable[[int, int], None] | None = None,
) -> DeskewResult:
    """A quad suggestion (source=auto, the box = the whole upright image) for every image
    whose border is found and that has no box a person drew or accepted. An automatic
    chest box is replaced: it was on the photo's grid, not the upright one."""
    from core.cohort.crops import file_sha256
    from core.cohort.images import read_image

    result = DeskewResult(existing)
    for i, (ref, path) in enumerate(images):
        try:
            sha = file_sha256(path)
            current = existing.entry(sha)
            if current is not None and current.crop.used:
                result.kept.append(ref)
                continue
            border = find_border(read_image(path).pixels)
        except (OSError, BPDError) as exc:
            result.problems.append(f"{ref}: {getattr(exc, 'detail', exc)}")
            continue
        if border is None:
            result.not_found.append(ref)
        else:
            result.found.append((ref, border))
            result.table = result.table.with_entry(CropEntry(ref, sha, border.crop()))
        if on_progress:
            on_progress(i + 1, len(images))
    return result
