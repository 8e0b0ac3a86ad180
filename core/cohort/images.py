"""Read one radiograph from disk, whatever its format, into grey values in [0, 1].

Formats are recognised by their first bytes, not by the file name: sites rename files,
export DICOM without an extension, or save PNGs as ``.jpg``.
"""

from __future__ import annotations

import io
import warnings as pywarnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.errors import ImageError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
SUPPORTED = "DICOM, PNG (8/16 bit) or JPEG"


@dataclass
class DecodedImage:
    pixels: np.ndarray  # float32 [H, W] in [0, 1], 0 = black
    format: str  # "dicom" | "png" | "jpeg"
    warnings: list[str] = field(default_factory=list)
    # One short key per warning (same order), e.g. "body_part_not_chest".
    warning_reasons: list[str] = field(default_factory=list)


class UnsupportedFormat(ImageError):
    reason = "unsupported_format"


class ImageTooLarge(ImageError):
    """More pixels than PIL decodes safely (a decompression bomb, or not a radiograph)."""

    reason = "image_too_large"


def sniff_format(head: bytes) -> str | None:
    """ "dicom", "png", "jpeg" or None, from the first 132 bytes of a file."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(PNG_MAGIC):
        return "png"
    if head.startswith(JPEG_MAGIC):
        return "jpeg"
    # DICOM written without the 128-byte preamble: starts with a group 0002/0008 tag.
    if len(head) >= 8 and head[:2] in (b"\x02\x00", b"\x08\x00") and head[4:6].isalpha():
        return "dicom"
    return None


def read_image(path: str | Path) -> DecodedImage:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ImageError("image file not found", file=path) from exc
    except OSError as exc:
        raise ImageError(f"cannot read image file ({exc.strerror})", file=path) from exc
    return decode_image_bytes(data, path)


def decode_image_bytes(data: bytes, name: str | Path) -> DecodedImage:
    fmt = sniff_format(data[:132])
    if fmt is None:
        raise UnsupportedFormat(
            f"not a {SUPPORTED} file (content not recognised{', empty file' if not data else ''})",
            file=name,
        )
    if fmt == "dicom":
        from core.cohort.dicom import decode_dicom

        pixels, notes = decode_dicom(data, name)
        return DecodedImage(
            pixels, "dicom", [msg for _, msg in notes], [reason for reason, _ in notes]
        )
    # PIL warns (DecompressionBombWarning) on stderr for very large images; a warning is
    # kept with the file instead, and twice the limit is refused as a problem of the file.
    with pywarnings.catch_warnings(record=True) as caught:
        pywarnings.simplefilter("always")
        pixels = _decode_raster(data, name, fmt)
    notes = _large_image_notes(caught, pixels, name)
    return DecodedImage(pixels, fmt, notes, ["large_image"] * len(notes))


def _large_image_notes(caught, pixels: np.ndarray, name: str | Path) -> list[str]:
    from PIL import Image

    if not any(issubclass(w.category, Image.DecompressionBombWarning) for w in caught):
        return []
    h, w = pixels.shape
    return [
        f"{name}: very large image ({w} x {h} pixels, over PIL's safety limit of "
        f"{Image.MAX_IMAGE_PIXELS:,}); check that it is a single radiograph"
    ]


def _decode_raster(data: bytes, name: str | Path, fmt: str) -> np.ndarray:
    from PIL import Image, ImageOps

    try:
        img = Image.open(io.BytesIO(data))
        if fmt == "jpeg" and img.mode in ("RGB", "YCbCr"):
            img.draft("L", img.size)  # libjpeg emits luma directly: same values, 2x faster
        img.load()
        if fmt == "jpeg":
            img = ImageOps.exif_transpose(img)
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(
            f"{fmt.upper()} image is too large to decode safely (more than twice PIL's "
            f"limit of {Image.MAX_IMAGE_PIXELS:,} pixels); a radiograph is far smaller: "
            "check the file or export it at a normal size",
            file=name,
        ) from exc
    except Exception as exc:
        raise ImageError(f"cannot decode {fmt.upper()} image ({exc})", file=name) from exc
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale PNG (PIL may widen it to "I"): the IHDR bit depth is byte 24.
        depth = data[24] if fmt == "png" and len(data) > 24 else 16
        arr = np.asarray(img, dtype=np.float32) / np.float32(2**depth - 1)
        return np.clip(arr, 0.0, 1.0)
    if mode == "F":
        return np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)
    if mode in ("1", "L", "P", "LA", "PA", "RGB", "RGBA", "CMYK", "YCbCr", "RGBX"):
        # ITU-R 601 luma for colour, palette resolved first.
        grey = img.convert("RGBA").convert("L") if mode in ("P", "PA") else img.convert("L")
        return np.asarray(grey, dtype=np.float32) / np.float32(255.0)
    raise ImageError(f"unsupported {fmt.upper()} pixel mode {mode}", file=name)
