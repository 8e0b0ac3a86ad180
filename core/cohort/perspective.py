"""A radiograph seen in perspective and the homography that stands it upright.

A quad is the radiograph's four corners on a photograph of a monitor or a film, as 8
numbers x0, y0, x1, y1, x2, y2, x3, y3 on the photo's pixel grid (pixel edges at
integers, y down), clockwise on screen; corner 0 becomes the upright image's top-left.
The upright grid keeps the photo's resolution: its width is the mean length of the top
and bottom sides, its height the mean of the left and right sides. Pure geometry (numpy):
core.cohort.crops applies it, core.cohort.deskew finds it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from core.errors import InputError

# where a point has no image (beyond the homography's horizon): far off any image, so a
# sampler fills it and no NaN ever reaches an index
OFF_IMAGE = -1e9


def check_quad(values: Sequence[float]) -> tuple[float, ...]:
    """8 finite numbers forming a convex quadrilateral, clockwise on screen, each side
    2 pixels or more; InputError saying which rule fails."""
    numbers = tuple(float(v) for v in values)
    if len(numbers) != 8 or not all(math.isfinite(v) for v in numbers):
        raise InputError(f"a deskew quad needs 8 numbers (4 corners x, y), not {values}")
    pts = corners(numbers)
    edges = np.roll(pts, -1, axis=0) - pts
    after = np.roll(edges, -1, axis=0)
    turns = edges[:, 0] * after[:, 1] - edges[:, 1] * after[:, 0]  # > 0: a right turn
    if np.hypot(edges[:, 0], edges[:, 1]).min() < 2:
        raise InputError("a deskew quad's sides must be 2 pixels or longer")
    if not (turns > 0).all():
        raise InputError(
            "a deskew quad must be convex with its corners clockwise from the top-left "
            f"(x, y pairs: {', '.join(f'({x:g}, {y:g})' for x, y in pts)})"
        )
    return numbers


def corners(quad: Sequence[float]) -> np.ndarray:
    """[4, 2] float64 array of the corners (x, y)."""
    return np.asarray(quad, dtype=np.float64).reshape(4, 2)


def upright_size(quad: Sequence[float]) -> tuple[int, int]:
    """(height, width) of the upright grid: the mean of opposite sides' lengths."""
    p = corners(quad)
    side = np.hypot(*(np.roll(p, -1, axis=0) - p).T)  # top, right, bottom, left
    return max(2, round((side[1] + side[3]) / 2)), max(2, round((side[0] + side[2]) / 2))


def homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """3 x 3 matrix taking the 4 points `src` [4, 2] onto `dst` [4, 2] (h33 = 1)."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(np.asarray(src, float), np.asarray(dst, float), strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    try:
        h = np.linalg.solve(np.array(rows), np.array(rhs))
    except np.linalg.LinAlgError:
        raise InputError("a deskew quad with three corners on one line has no homography") from None
    return np.append(h, 1.0).reshape(3, 3)


def upright_to_image(quad: Sequence[float]) -> np.ndarray:
    """Homography: upright-grid point (u, v) -> photo point (x, y)."""
    h, w = upright_size(quad)
    rect = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64)
    return homography(rect, corners(quad))


def project(m: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply the homography `m` to points (x, y) (arrays of one shape)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    d = m[2, 0] * x + m[2, 1] * y + m[2, 2]
    ok = d > 1e-12
    safe = np.where(ok, d, 1.0)
    u = (m[0, 0] * x + m[0, 1] * y + m[0, 2]) / safe
    v = (m[1, 0] * x + m[1, 1] * y + m[1, 2]) / safe
    return np.where(ok, u, OFF_IMAGE), np.where(ok, v, OFF_IMAGE)


def to_image(quad: Sequence[float], u: np.ndarray, v: np.ndarray):
    """Upright-grid coordinates -> photo coordinates."""
    return project(upright_to_image(quad), u, v)


def to_upright(quad: Sequence[float], x: np.ndarray, y: np.ndarray):
    """Photo coordinates -> upright-grid coordinates (the inverse of to_image)."""
    return project(np.linalg.inv(upright_to_image(quad)), x, y)
