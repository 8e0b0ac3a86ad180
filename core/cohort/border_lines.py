"""Straight edges of a photo at a working size: the lines a photographed radiograph's
border is looked for among (core.cohort.deskew).

Grey values are stretched to the 1st-99th percentile at WORK_SIZE, blurred, and their
clear edges thinned to one pixel across. A Hough transform in which each edge pixel
votes only near its own gradient direction gives the strongest near-horizontal and
near-vertical lines; each is then fitted to the edge pixels along it (a Hough peak is
only good to a degree or two). A Line also records, pixel by pixel along itself, where a
clear step in grey value crosses it, so that any stretch of it can be scored at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

WORK_SIZE = 384  # long side the search runs at
BLUR = 1.2  # px, Gaussian, before the gradients
ANGLE_WINDOW = 2  # degrees each side of a pixel's own gradient direction
FAMILY_SPAN = 25  # degrees from horizontal / vertical a side may lean (perspective)
LINES_PER_FAMILY = 12
EDGE_STEP = 0.06  # a clear edge: a step of 6% of the grey range (1st-99th percentile)
EDGE_SLOPE = EDGE_STEP / (BLUR * math.sqrt(2 * math.pi))  # its peak slope after the blur
STEP_REACH = 3.0  # px each side of a line where the step in grey value across it is read
SLACK = np.array([-1.0, 0.0, 1.0])  # px a fitted line may be off its edge


def working(pixels01: np.ndarray) -> tuple[np.ndarray, float]:
    from PIL import Image

    arr = np.asarray(pixels01, dtype=np.float32)
    h, w = arr.shape
    scale = min(1.0, WORK_SIZE / max(h, w))
    if scale < 1:
        size = (max(16, round(w * scale)), max(16, round(h * scale)))
        arr = np.asarray(Image.fromarray(arr).resize(size, Image.Resampling.BILINEAR))
        scale = arr.shape[1] / w
    lo, hi = np.percentile(arr, [1, 99])
    return np.clip((arr - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32), scale


def gradients(g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The image after a Gaussian blur, and its d/dx, d/dy in grey units per pixel."""
    from scipy import ndimage

    smooth = ndimage.gaussian_filter(g, BLUR)
    return smooth, ndimage.sobel(smooth, axis=1) / 8, ndimage.sobel(smooth, axis=0) / 8


def edge_pixels(gx: np.ndarray, gy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ys, xs) of the clear edges, thinned to one pixel across (a pixel at least as strong
    as its two neighbours along its gradient): a faint edge then votes as much as a
    strong one of the same length, as a monitor's dark margin against its bezel must."""
    mag = np.hypot(gx, gy)
    angle = np.round(np.degrees(np.arctan2(gy, gx)) / 45).astype(np.int64) % 4
    pad = np.pad(mag, 1)
    h, w = mag.shape
    thin = np.zeros_like(mag, dtype=bool)
    for k, (dy, dx) in enumerate(((0, 1), (1, 1), (1, 0), (1, -1))):
        ahead = pad[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
        behind = pad[1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w]
        thin |= (angle == k) & (mag >= ahead) & (mag >= behind)
    return np.nonzero(thin & (mag > EDGE_SLOPE))


def _hough(gx: np.ndarray, gy: np.ndarray) -> tuple[np.ndarray, int]:
    """Accumulator [180 angles, 2 * diag + 1 offsets] of lines x cos t + y sin t = rho
    (pixel centres): each thinned edge pixel votes once, near its own gradient direction."""
    h, w = gx.shape
    diag = math.ceil(math.hypot(h, w))
    ys, xs = edge_pixels(gx, gy)
    phi = np.round(np.degrees(np.arctan2(gy[ys, xs], gx[ys, xs]))).astype(np.int64) % 180
    cx, cy = xs + 0.5, ys + 0.5
    acc = np.zeros(180 * (2 * diag + 1))
    for d in range(-ANGLE_WINDOW, ANGLE_WINDOW + 1):
        t = (phi + d) % 180
        rho = np.round(cx * np.cos(np.radians(t)) + cy * np.sin(np.radians(t))).astype(np.int64)
        acc += np.bincount(t * (2 * diag + 1) + rho + diag, minlength=acc.size)
    return acc.reshape(180, 2 * diag + 1), diag


def _peaks(acc: np.ndarray, angles: np.ndarray, diag: int) -> list[tuple[float, float]]:
    """The strongest lines (angle in degrees, rho) of one family, with their neighbours
    suppressed so one edge gives one line."""
    from scipy import ndimage

    acc = ndimage.uniform_filter(acc, size=3)
    out: list[tuple[float, float]] = []
    reach = max(5, round(0.015 * diag))
    floor = 0.05 * float(acc.max())  # weaker than 5% of the strongest line: noise
    for _ in range(LINES_PER_FAMILY):
        i, j = np.unravel_index(int(np.argmax(acc)), acc.shape)
        if acc[i, j] <= max(floor, 0.0):
            break
        out.append((float(angles[i]), float(j - diag)))
        acc[max(0, i - 3) : i + 4, max(0, j - reach) : j + reach + 1] = 0
    return out


def find_lines(gx: np.ndarray, gy: np.ndarray) -> tuple[list, list]:
    """(near-horizontal, near-vertical) lines as (angle of the normal in degrees, rho),
    each fitted to its edge pixels (a Hough peak is only good to a degree or two)."""
    acc, diag = _hough(gx, gy)
    span = FAMILY_SPAN
    horizontal = _peaks(acc[90 - span : 90 + span + 1], np.arange(90 - span, 90 + span + 1),
                        diag)  # fmt: skip
    # vertical lines straddle 0 / 180 degrees: angle t >= 180 - span is angle t - 180
    # with the offset's sign turned, so one family is one continuous block
    vertical = np.vstack([acc[180 - span :, ::-1], acc[: span + 1]])
    vertical_peaks = _peaks(vertical, np.arange(-span, span + 1), diag)
    ys, xs = edge_pixels(gx, gy)
    edges = (xs + 0.5, ys + 0.5, np.arctan2(gy[ys, xs], gx[ys, xs]))
    return [_fit(ln, edges) for ln in horizontal], [_fit(ln, edges) for ln in vertical_peaks]


def _fit(line: tuple[float, float], edges) -> tuple[float, float]:
    """The line through the thinned edge pixels near `line` whose gradient is across it
    (total least squares, each pixel alike: a faint stretch of a border counts as much
    as a strong one), refitted closer and closer."""
    x, y, phi = edges
    for reach in (5.0, 3.0, 2.0, 1.5):
        t = math.radians(line[0])
        d = x * math.cos(t) + y * math.sin(t) - line[1]
        across = np.abs(np.sin(phi - t)) < math.sin(math.radians(10))
        near = (np.abs(d) <= reach) & across
        if near.sum() < 10:
            return line
        cx, cy = x[near].mean(), y[near].mean()
        dx, dy = x[near] - cx, y[near] - cy
        cov = np.array([[np.sum(dx * dx), np.sum(dx * dy)], [np.sum(dx * dy), np.sum(dy * dy)]])
        nx, ny = np.linalg.eigh(cov)[1][:, 0]  # the normal: the direction of least spread
        if nx * math.cos(t) + ny * math.sin(t) < 0:
            nx, ny = -nx, -ny
        line = (math.degrees(math.atan2(ny, nx)), float(cx * nx + cy * ny))
    return line


def distinct(lines: list[Line], shape: tuple[int, int]) -> list[Line]:
    """Lines less those that the fit made (nearly) the same line as a stronger one."""
    out: list[Line] = []
    for ln in lines:
        if all(abs(ln.angle - o.angle) > 0.5 or abs(crossing(ln, shape) - crossing(o, shape)) > 1.5
               for o in out):  # fmt: skip
            out.append(ln)
    return out


@dataclass
class Line:
    """A fitted line x cos t + y sin t = rho with, at every pixel along it, whether the
    gradient across it is a clear edge one way (+ along the normal) or the other; a
    side's support is then two lookups in cumulative counts, whatever its corners."""

    angle: float  # degrees
    rho: float
    normal: np.ndarray  # (cos t, sin t): down for a near-horizontal line, right for vertical
    along: np.ndarray  # (-sin t, cos t)
    first: float  # position along the line of the first sample
    plus: np.ndarray  # cumulative count of samples with a clear edge along +normal
    minus: np.ndarray  # ... along -normal

    def share(self, a: np.ndarray, b: np.ndarray, outward: float, polarity: float) -> float:
        """Share of the side a -> b (the last 5% at each corner left out, where two edges
        blur together) that is a clear edge with the surround's polarity (+1 brighter
        outside); `outward` is +1 when the quad's outside lies along +normal."""
        sa, sb = sorted((float(a @ self.along), float(b @ self.along)))
        trim = 0.05 * (sb - sa)
        i0 = max(0, math.ceil(sa + trim - self.first))
        i1 = min(len(self.plus) - 1, math.floor(sb - trim - self.first) + 1)
        if i1 <= i0:
            return 0.0
        cum = self.plus if outward * polarity > 0 else self.minus
        return float(cum[i1] - cum[i0]) / (i1 - i0)


def profile(line: tuple[float, float], g: np.ndarray) -> Line:
    """The line's clear edges: at every pixel along it, the step in grey value from
    STEP_REACH px on one side to as far on the other (within the slack). A step, not a
    slope: a blurred photo's faint edge is as wide as it is faint."""
    from scipy import ndimage

    t = math.radians(line[0])
    normal, along = np.array([math.cos(t), math.sin(t)]), np.array([-math.sin(t), math.cos(t)])
    reach = math.hypot(*g.shape)
    s = np.arange(-reach, reach + 1.0)
    pts = line[1] * normal + s[:, None] * along  # [n, 2]

    def grey(offset: np.ndarray) -> np.ndarray:
        xs = pts[None, :, 0] + offset[:, None] * normal[0]
        ys = pts[None, :, 1] + offset[:, None] * normal[1]
        return ndimage.map_coordinates(g, [ys - 0.5, xs - 0.5], order=1, cval=np.nan)

    step = grey(SLACK + STEP_REACH) - grey(SLACK - STEP_REACH)  # NaN: off the photo
    with np.errstate(invalid="ignore"):
        plus = np.concatenate([[0], np.cumsum(np.nanmax(np.nan_to_num(step, nan=0.0), axis=0)
                                              > EDGE_STEP)])  # fmt: skip
        minus = np.concatenate([[0], np.cumsum(np.nanmin(np.nan_to_num(step, nan=0.0), axis=0)
                                               < -EDGE_STEP)])  # fmt: skip
    return Line(line[0], line[1], normal, along, float(s[0]), plus, minus)


def meet(a: Line, b: Line) -> np.ndarray | None:
    m = np.array([a.normal, b.normal])
    if abs(np.linalg.det(m)) < 1e-6:
        return None
    return np.linalg.solve(m, [a.rho, b.rho])


def crossing(line: Line, shape: tuple[int, int]) -> float:
    """How far below (a near-horizontal line: its normal points down) or right of
    (near-vertical: it points right) the photo's centre the line passes."""
    h, w = shape
    return line.rho - float(np.array([w / 2, h / 2]) @ line.normal)
