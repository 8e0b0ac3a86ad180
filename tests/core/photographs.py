"""Real radiographs "photographed" from a monitor or a light box, with known corners: the
radiograph warped into a quad (the same homography convention as core.cohort.perspective,
computed here from scratch so a shared mistake cannot hide), a noisy darker or brighter
surround, uneven lighting, a little blur and sensor noise."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def _homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Direct linear transform by SVD (not core's 8 x 8 solve)."""
    rows = []
    for (x, y), (u, v) in zip(src, dst, strict=True):
        rows.append([-x, -y, -1, 0, 0, 0, u * x, u * y, u])
        rows.append([0, 0, 0, -x, -y, -1, v * x, v * y, v])
    h = np.linalg.svd(np.array(rows, dtype=np.float64))[2][-1]
    return (h / h[-1]).reshape(3, 3)


def random_quad(rng: np.random.Generator, shape: tuple[int, int], tilt: float = 0.07):
    """Corners (TL, TR, BR, BL) [4, 2] of a film seen in perspective: a rectangle inset
    10-18% from the photo's edges, each corner moved 2.5% to `tilt` of the photo's size
    each way (up or down, left or right at random): never an upright rectangle, which
    find_border leaves alone (nothing to stand upright)."""
    h, w = shape
    inset = rng.uniform(0.10, 0.18, size=4)  # left, top, right, bottom
    left, top, right, bottom = inset[0] * w, inset[1] * h, (1 - inset[2]) * w, (1 - inset[3]) * h
    rect = np.array([[left, top], [right, top], [right, bottom], [left, bottom]])
    shift = rng.uniform(0.025, tilt, size=(4, 2)) * rng.choice([-1, 1], size=(4, 2))
    return rect + shift * (w, h)


def photograph(
    radiograph01: np.ndarray,
    quad: np.ndarray,
    shape: tuple[int, int],
    *,
    surround: str = "dark",
    seed: int = 0,
    blur: float = 1.0,
    lighting: float = 0.15,
    noise: float = 0.02,
) -> np.ndarray:
    """float32 [H, W] in [0, 1]: `radiograph01` filling `quad` (corner 0 = its top-left)
    on a monitor ("dark": a bezel darker than the screen's black) or a light box
    ("bright": brighter than the film's clearest part)."""
    rng = np.random.default_rng(seed)
    h, w = shape
    rh, rw = radiograph01.shape
    film = np.array([[0, 0], [rw, 0], [rw, rh], [0, rh]], dtype=np.float64)
    to_film = _homography(np.asarray(quad, dtype=np.float64), film)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    d = to_film[2, 0] * x + to_film[2, 1] * y + to_film[2, 2]
    u = (to_film[0, 0] * x + to_film[0, 1] * y + to_film[0, 2]) / d
    v = (to_film[1, 0] * x + to_film[1, 1] * y + to_film[1, 2]) / d
    inside = (u >= 0) & (u <= rw) & (v >= 0) & (v <= rh)
    values = ndimage.map_coordinates(radiograph01.astype(np.float64), [v - 0.5, u - 0.5],
                                     order=1, mode="nearest")  # fmt: skip
    if surround == "dark":  # a monitor shows black as dark grey; its bezel is darker
        screen = 0.14 + 0.8 * values
        around = 0.04 + 0.03 * rng.standard_normal((h, w))
    elif surround == "bright":  # the light box shines through where there is no film
        screen = 0.05 + 0.8 * values
        around = 0.97 + 0.02 * rng.standard_normal((h, w))
    else:
        raise ValueError(surround)
    photo = np.where(inside, screen, ndimage.gaussian_filter(around, 2.0))
    ramp = 1 - lighting * (0.6 * x / w + 0.4 * y / h)  # light falls off across the photo
    photo = ndimage.gaussian_filter(photo * ramp, blur)
    photo += noise * rng.standard_normal((h, w))
    return np.clip(photo, 0, 1).astype(np.float32)


def corner_errors(found: tuple[float, ...], quad: np.ndarray) -> np.ndarray:
    """Distance in photo pixels of each found corner from the true one."""
    return np.hypot(*(np.asarray(found).reshape(4, 2) - np.asarray(quad)).T)
