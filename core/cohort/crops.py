"""Per-image crop box and rotation: the chest cut out of the radiograph before resizing.

The paper's authors cropped and rotated every training image by hand (docs/method.md,
"Crops"). A box is x0, y0, x1, y1 in the ORIGINAL image's pixel grid (pixel edges at
integers; x to the right, y down) and a rotation in degrees: the box is turned clockwise
by `rotation` about its own centre on the radiograph, and what lies inside it is cut out
and made upright. Rotation 0 with an integer box is an exact slice.

Boxes live in a sidecar CSV beside the cohort table, `<table>.crops.csv`, one row per
image: image (path as in the table), sha256 (of the file content: the key, so a renamed
file keeps its box and a changed file loses it), x0, y0, x1, y1, rotation, source.
source is "manual" (drawn or corrected by a person), "auto" (a suggestion from
`bpd cohort autobox`, never used until reviewed) or "accepted" (an automatic box a person
accepted as it is). Only manual and accepted boxes are used.

A photographed film or monitor may also carry a deskew quad (core.cohort.perspective):
eight optional columns q0x, q0y, ... q3y, the radiograph's corners on the photo. Then the
photo is first stood upright (a homography onto a rectangle, docs/method.md "Deskew") and
the box and rotation are in that upright grid. A sidecar written without these columns
reads as before: no quad.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ImageError, InputError

SOURCES = ("manual", "auto", "accepted")
USED_SOURCES = ("manual", "accepted")
FIELDS = ("image", "sha256", "x0", "y0", "x1", "y1", "rotation", "source")
QUAD_FIELDS = ("q0x", "q0y", "q1x", "q1y", "q2x", "q2y", "q3x", "q3y")  # optional
SIDECAR_SUFFIX = ".crops.csv"


@dataclass(frozen=True)
class Crop:
    x0: float
    y0: float
    x1: float
    y1: float
    rotation: float = 0.0  # degrees, clockwise on the radiograph as displayed
    source: str = "manual"
    # deskew: the radiograph's 4 corners on a photo (8 numbers, core.cohort.perspective);
    # the box is then on the upright grid. None: the image's own grid.
    quad: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.quad is not None:
            from core.cohort.perspective import check_quad

            object.__setattr__(self, "quad", check_quad(self.quad))
        values = (self.x0, self.y0, self.x1, self.y1, self.rotation)
        if not all(math.isfinite(float(v)) for v in values):
            raise InputError(f"crop box values must be numbers, not {values}")
        for name in ("x0", "y0", "x1", "y1", "rotation"):
            object.__setattr__(self, name, float(getattr(self, name)))
        if self.x1 - self.x0 < 2 or self.y1 - self.y0 < 2:
            raise InputError(
                f"crop box needs x1 > x0 and y1 > y0 by 2 pixels or more "
                f"(x0={self.x0:g}, y0={self.y0:g}, x1={self.x1:g}, y1={self.y1:g})"
            )
        if min(self.x0, self.y0) < 0:
            raise InputError(
                f"crop box starts left of or above the image ({self.x0:g}, {self.y0:g})"
            )
        if not -180.0 <= self.rotation <= 180.0:
            raise InputError(
                f"rotation must be between -180 and 180 degrees, not {self.rotation:g}"
            )
        if self.source not in SOURCES:
            raise InputError(
                f"crop source must be one of {', '.join(SOURCES)}, not {self.source!r}"
            )

    @property
    def width(self) -> int:
        return max(2, round(self.x1 - self.x0))

    @property
    def height(self) -> int:
        return max(2, round(self.y1 - self.y0))

    @property
    def used(self) -> bool:
        """Applied in training and prediction (an unreviewed automatic box is not)."""
        return self.source in USED_SOURCES

    def geometry(self) -> dict[str, Any]:
        """Box, rotation and (only when there is one) the deskew quad: Crop(**geometry())
        rebuilds it, and a box without a quad keeps the key it had before quads existed."""
        box = {"x0": self.x0, "y0": self.y0, "x1": self.x1, "y1": self.y1,
               "rotation": self.rotation}  # fmt: skip
        return box if self.quad is None else {**box, "quad": list(self.quad)}

    def key(self) -> str:
        """Short stable name of the geometry (not the source) for the image cache."""
        text = json.dumps(self.geometry(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def grid_shape(self, shape: tuple[int, int]) -> tuple[int, int]:
        """(height, width) of the grid the box is on: the upright grid of the quad, or the
        image [H, W] itself."""
        if self.quad is None:
            return int(shape[0]), int(shape[1])
        from core.cohort.perspective import upright_size

        return upright_size(self.quad)

    def check_fits(self, shape: tuple[int, int]) -> None:
        """The box (before rotation) must lie on its grid, and a quad on the image (a
        corner may overhang by 5%: a film's corner just cut off by the photo's edge): a
        box drawn on another image of the same content hash cannot, a typo can."""
        h, w = int(shape[0]), int(shape[1])
        if self.quad is not None:
            relative = np.asarray(self.quad).reshape(4, 2) / (w, h)
            if relative.min() < -0.05 or relative.max() > 1.05:
                raise ImageError(f"deskew quad {self.quad} reaches outside the {w} x {h} image")
        gh, gw = self.grid_shape(shape)
        if self.x1 > gw + 0.5 or self.y1 > gh + 0.5:
            grid = "upright (deskewed) image" if self.quad is not None else "image"
            raise ImageError(
                f"crop box ({self.x0:g}, {self.y0:g}, {self.x1:g}, {self.y1:g}) "
                f"reaches outside the {gw} x {gh} {grid}"
            )

    def affine(self) -> np.ndarray:
        """2 x 3 matrix: box-frame point (u, v) -> original point (x, y)."""
        t = math.radians(self.rotation)
        c, s = math.cos(t), math.sin(t)
        cx, cy = (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2
        w, h = self.width, self.height
        return np.array(
            [[c, -s, cx - c * w / 2 + s * h / 2], [s, c, cy - s * w / 2 - c * h / 2]],
            dtype=np.float64,
        )

    def to_grid(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Box-frame coordinates -> the box's grid (the image, or its upright grid)."""
        m = self.affine()
        return m[0, 0] * u + m[0, 1] * v + m[0, 2], m[1, 0] * u + m[1, 1] * v + m[1, 2]

    def to_original(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Box-frame coordinates -> original image coordinates (continuous, edges at ints):
        the box's affine map, then the quad's homography if there is one."""
        gx, gy = self.to_grid(u, v)
        if self.quad is None:
            return gx, gy
        from core.cohort.perspective import to_image

        return to_image(self.quad, gx, gy)

    def to_box(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Original image coordinates -> box-frame coordinates (the inverse of to_original)."""
        if self.quad is not None:
            from core.cohort.perspective import to_upright

            x, y = to_upright(self.quad, x, y)
        m = self.affine()
        dx, dy = x - m[0, 2], y - m[1, 2]
        return m[0, 0] * dx + m[1, 0] * dy, m[0, 1] * dx + m[1, 1] * dy


def sample_bilinear(img: np.ndarray, x: np.ndarray, y: np.ndarray, fill: float) -> np.ndarray:
    """Values of `img` [H, W] at continuous points (pixel i spans [i, i+1)); `fill` where a
    point lies off the image. One sampler for cropping and for mapping maps back, so the two
    directions agree to the pixel."""
    h, w = img.shape
    fx, fy = x - 0.5, y - 0.5
    inside = (fx >= -0.5) & (fx <= w - 0.5) & (fy >= -0.5) & (fy <= h - 0.5)
    fx, fy = np.clip(fx, 0, w - 1), np.clip(fy, 0, h - 1)
    x0, y0 = np.floor(fx).astype(np.int64), np.floor(fy).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    ax, ay = (fx - x0).astype(np.float32), (fy - y0).astype(np.float32)
    top = img[y0, x0] * (1 - ax) + img[y0, x1] * ax
    bottom = img[y1, x0] * (1 - ax) + img[y1, x1] * ax
    out = top * (1 - ay) + bottom * ay
    return np.where(inside, out, np.float32(fill)).astype(np.float32)


def apply_crop(pixels: np.ndarray, crop: Crop) -> np.ndarray:
    """float32 [H, W] -> the box's contents, upright, [box height, box width]; black where
    a rotated box's corner leaves the image. With a deskew quad the photo is stood upright
    first and the box cut from that grid, in one bilinear sampling (not two)."""
    arr = np.asarray(pixels, dtype=np.float32)
    crop.check_fits(arr.shape)
    exact = [crop.x0, crop.y0, crop.x1, crop.y1]
    if crop.quad is not None:
        v, u = np.mgrid[0 : crop.height, 0 : crop.width].astype(np.float64) + 0.5
        gx, gy = crop.to_grid(u, v)
        gh, gw = crop.grid_shape(arr.shape)
        on_grid = (gx >= 0) & (gx <= gw) & (gy >= 0) & (gy <= gh)
        x, y = crop.to_original(u, v)
        return np.where(on_grid, sample_bilinear(arr, x, y, 0.0), np.float32(0.0))
    if crop.rotation == 0 and all(float(v).is_integer() for v in exact):
        x0, y0, x1, y1 = (int(v) for v in exact)
        out = np.zeros((crop.height, crop.width), dtype=np.float32)
        part = arr[y0:y1, x0:x1]
        out[: part.shape[0], : part.shape[1]] = part
        return out
    v, u = np.mgrid[0 : crop.height, 0 : crop.width].astype(np.float64) + 0.5
    x, y = crop.to_original(u, v)
    return sample_bilinear(arr, x, y, 0.0)


def box_map_to_original(values: np.ndarray, crop: Crop, shape: tuple[int, int]) -> np.ndarray:
    """A map on the box frame [box height, box width] -> the original image [H, W]
    (float32; NaN outside the box, where the model saw nothing)."""
    h, w = int(shape[0]), int(shape[1])
    y, x = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    u, v = crop.to_box(x, y)
    return sample_bilinear(np.asarray(values, dtype=np.float32), u, v, np.nan)


# --- the table of boxes --------------------------------------------------------------
@dataclass(frozen=True)
class CropEntry:
    image: str
    sha256: str
    crop: Crop

    def row(self) -> dict[str, Any]:
        """A sidecar row (also a run config's JSON): the quad columns only when it has one."""
        box = {k: v for k, v in self.crop.geometry().items() if k != "quad"}
        quad = dict(zip(QUAD_FIELDS, self.crop.quad or (), strict=False))
        return {"image": self.image, "sha256": self.sha256, **box,
                "source": self.crop.source, **quad}  # fmt: skip


@dataclass(frozen=True)
class CropTable:
    """Boxes by image content hash. `for_sha` returns only boxes that are used."""

    entries: tuple[CropEntry, ...] = ()
    path: str | None = field(default=None, compare=False)  # the sidecar it was read from
    _by_sha: dict[str, CropEntry] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "entries", tuple(self.entries))
        object.__setattr__(self, "_by_sha", {e.sha256: e for e in self.entries})

    def __len__(self) -> int:
        return len(self.entries)

    def entry(self, sha: str) -> CropEntry | None:
        return self._by_sha.get(sha)

    def for_sha(self, sha: str | None) -> Crop | None:
        e = self._by_sha.get(sha) if sha else None
        return e.crop if e is not None and e.crop.used else None

    def used(self) -> CropTable:
        return CropTable(tuple(e for e in self.entries if e.crop.used), self.path)

    def merged(self, other: CropTable) -> CropTable:
        """`other`'s boxes win where both have one."""
        mine = [e for e in self.entries if other.entry(e.sha256) is None]
        return CropTable((*mine, *other.entries), other.path or self.path)

    def with_entry(self, entry: CropEntry) -> CropTable:
        rest = [e for e in self.entries if e.sha256 != entry.sha256]
        return CropTable((*rest, entry), self.path)

    def accepted(self) -> CropTable:
        """Every automatic box accepted as it is (`bpd cohort autobox --accept`); a deskew
        suggestion stays one: a border is applied only once a person has seen it."""
        return CropTable(
            tuple(
                replace(e, crop=replace(e.crop, source="accepted"))
                if e.crop.source == "auto" and e.crop.quad is None else e
                for e in self.entries
            ),
            self.path,
        )  # fmt: skip

    def without(self, sha: str) -> CropTable:
        """The table less the image with content hash `sha` (a discarded suggestion)."""
        return CropTable(tuple(e for e in self.entries if e.sha256 != sha), self.path)

    def to_json(self) -> list[dict[str, Any]]:
        return [e.row() for e in self.entries]

    @classmethod
    def from_json(cls, rows: Iterable[Mapping[str, Any]] | None, path: str | None = None):
        return cls(tuple(_entry(r, path, i + 1) for i, r in enumerate(rows or ())), path)


def _entry(row: Mapping[str, Any], file: str | None, number: int) -> CropEntry:
    """One sidecar row -> CropEntry; InputError naming the file and the data row."""
    # a box edge at 0.0 (a JSON number in a run's config.json) is a value, not a gap
    missing = [k for k in FIELDS if k != "rotation" and not _cell(row, k)]
    if missing:
        raise InputError(f"crop row is missing {', '.join(missing)}", file=file, row=number)
    sha = str(row["sha256"]).strip().lower()
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise InputError(f"sha256 '{row['sha256']}' is not a SHA-256 hex digest", file=file,
                         row=number)  # fmt: skip
    try:
        numbers = {k: float(str(row[k]).strip()) for k in ("x0", "y0", "x1", "y1")}
        rotation = float(str(row.get("rotation") or 0).strip())
    except ValueError as exc:
        raise InputError(f"crop box values must be numbers ({exc})", file=file,
                         row=number) from None  # fmt: skip
    try:
        crop = Crop(**numbers, rotation=rotation, source=str(row["source"]).strip().lower(),
                    quad=_quad(row))  # fmt: skip
    except InputError as exc:
        raise InputError(exc.detail, file=file, row=number) from None
    return CropEntry(str(row["image"]).strip(), sha, crop)


def _cell(row: Mapping[str, Any], key: str) -> str:
    """A cell as text: '' when absent or empty (a CSV's empty string, a JSON null)."""
    value = row.get(key)
    return "" if value is None else str(value).strip()


def _quad(row: Mapping[str, Any]) -> tuple[float, ...] | None:
    """The optional quad columns: all empty (or absent: an older sidecar) or 8 numbers."""
    cells = [_cell(row, k) for k in QUAD_FIELDS]
    if not any(cells):
        return None
    if not all(cells):
        empty = [k for k, c in zip(QUAD_FIELDS, cells, strict=True) if not c]
        raise InputError(f"deskew quad is missing {', '.join(empty)} (give all 8 corners' "
                         "x and y, or none)")  # fmt: skip
    try:
        return tuple(float(c) for c in cells)
    except ValueError as exc:
        raise InputError(f"deskew quad values must be numbers ({exc})") from None


def file_sha256(path: str | Path) -> str:
    """The sidecar's key: SHA-256 of the file's bytes (as the image cache computes it)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def crop_for_file(path: str | Path, crops: CropTable | None) -> Crop | None:
    """The used box of the image file at `path`, or None (no table: the file is not read)."""
    if crops is None or not len(crops):
        return None
    try:
        return crops.for_sha(file_sha256(path))
    except OSError as exc:
        raise ImageError(f"cannot read image file ({exc.strerror})", file=path) from None


def sidecar_path(table: str | Path) -> Path:
    """The conventional sidecar of a cohort table: `<table>.crops.csv` beside it."""
    table = Path(table)
    return table.with_name(table.name + SIDECAR_SUFFIX)


def read_sidecar(path: str | Path) -> CropTable:
    """Every row (auto suggestions too); a bad row is an InputError naming file and row
    (data rows: 1 = the first row under the header). The same image twice is an error."""
    from core.csv_cells import read_csv

    path = Path(path)
    try:
        rows = read_csv(path)
    except FileNotFoundError:
        raise InputError("crop table not found", file=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the crop table ({exc})", file=path) from None
    if rows:
        absent = [k for k in FIELDS if k != "rotation" and k not in rows[0]]
        if absent:
            raise InputError(f"crop table lacks column(s) {', '.join(absent)}; expected "
                             f"{', '.join(FIELDS)}", file=path)  # fmt: skip
    entries: list[CropEntry] = []
    seen: dict[str, int] = {}
    for number, row in enumerate(rows, start=1):
        entry = _entry(row, str(path), number)
        if entry.sha256 in seen:
            raise InputError(f"image {entry.image} has a box already in data row "
                             f"{seen[entry.sha256]}", file=path, row=number)  # fmt: skip
        seen[entry.sha256] = number
        entries.append(entry)
    return CropTable(tuple(entries), str(path))


def write_sidecar(path: str | Path, table: CropTable) -> Path:
    from core.csv_cells import write_csv

    return write_csv(path, table.to_json(), FIELDS + QUAD_FIELDS)
