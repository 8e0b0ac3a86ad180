"""Grad-CAM overlays a person can read: the map drawn over the radiograph at the image's
own resolution and aspect, with a colour bar, and the infant, probability, outcome, fold
and the map's scaling written on the picture.

The model sees an R x R square (the whole image squashed, or a centred crop); the map is
mapped back onto that geometry, never the radiograph squashed onto the map. Scaling:
"image" divides each map by its own maximum (a p = 0.07 image can look as hot as a
p = 0.999 one), "shared" divides every map by the largest of a set (a run's explained
infants, one prediction's images) so colours compare across images. PIL only (no Qt): the
command line writes these files and the app draws the same colours.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from core.atomic import atomic_write_bytes
from core.cohort.crops import Crop, box_map_to_original

SCALINGS = ("shared", "image")


@dataclass(frozen=True)
class Caption:
    """What is written under an overlay. None: not known (e.g. no outcome for new images)."""

    infant: str | None  # None: a single image without a patient id
    prob: float | None = None
    threshold: float | None = None
    label: int | None = None  # true outcome, 1 = positive
    fold: str | None = None  # e.g. "r0-f1 (out-of-fold)" or "mean of 5 fold models"
    image: str | None = None  # file name, when an infant has several

    def lines(self) -> list[str]:
        first = [f"Infant {self.infant}"] if self.infant else []
        if self.image:
            first.append(self.image)
        if self.prob is not None:
            text = f"p = {self.prob:.3f}"
            if self.threshold is not None:
                cls = "positive" if self.prob >= self.threshold else "negative"
                text += f" ({cls} at threshold {self.threshold:.2f})"
            first.append(text)
        second = []
        if self.label is not None:
            second.append(f"true outcome: {'positive' if self.label else 'negative'}")
            if self.prob is not None and self.threshold is not None:
                second.append(outcome_class(self.label, self.prob, self.threshold))
        if self.fold:
            second.append(f"model: {self.fold}")
        return [" · ".join(first)] + ([" · ".join(second)] if second else [])


def jet(values: np.ndarray) -> np.ndarray:
    """Jet-like colormap: [H, W] in [0, 1] -> uint8 RGB [H, W, 3] (blue = 0, red = 1)."""
    v = np.clip(values, 0.0, 1.0)[..., None]
    centres = np.array([0.75, 0.5, 0.25], dtype=np.float32)  # R, G, B peaks
    rgb = np.clip(1.5 - np.abs(4.0 * (v - centres)), 0.0, 1.0)
    return (rgb * 255.0 + 0.5).astype(np.uint8)


def outcome_class(label: int, prob: float, threshold: float) -> str:
    """TP / FP / TN / FN of one infant at the threshold."""
    predicted = prob >= threshold
    if label:
        return "TP" if predicted else "FN"
    return "FP" if predicted else "TN"


def map_to_image(
    cam: np.ndarray,
    image_shape: tuple[int, int],
    center_crop: float | None = None,
    crop: Crop | None = None,
) -> np.ndarray:
    """The model-input map [R, R] on the original image [H, W] (float32; NaN where the
    model saw nothing: outside the image's crop box or a centre crop). Mirrors
    core.cohort.preprocess backwards: the centre crop, then the box and rotation, then
    (a photographed film with a deskew quad) the inverse homography onto the photo."""
    if crop is not None:
        on_box = map_to_image(cam, (crop.height, crop.width), center_crop)
        return box_map_to_original(on_box, crop, image_shape)
    h, w = int(image_shape[0]), int(image_shape[1])
    cam = np.asarray(cam, dtype=np.float32)
    if center_crop is None:
        return _resize(cam, h, w)
    side = max(2, round(min(h, w) * float(center_crop)))
    top, left = (h - side) // 2, (w - side) // 2
    out = np.full((h, w), np.nan, dtype=np.float32)
    out[top : top + side, left : left + side] = _resize(cam, side, side)
    return out


def _resize(cam: np.ndarray, h: int, w: int) -> np.ndarray:
    if cam.shape == (h, w):
        return cam
    img = Image.fromarray(cam).resize((w, h), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.float32)


def scaled_map(cam: np.ndarray, peak: float, shared_peak: float | None) -> np.ndarray:
    """Display values in [0, 1]. `cam` is scaled to its own maximum and `peak` is that
    maximum (core.explain.gradcam.explain_with_peak); with `shared_peak` (the largest peak
    of the set) the map is put on the set's common scale instead."""
    if shared_peak is None:
        return np.clip(cam, 0.0, 1.0)
    if shared_peak <= 0:
        return np.zeros_like(cam)
    return np.clip(cam * (float(peak) / float(shared_peak)), 0.0, 1.0)


def scaling_text(scaling: str, shared_peak: float | None = None, what: str = "run") -> str:
    """One line naming the scaling, shown on every overlay (file or screen)."""
    if scaling == "image":
        return "per-image scaling: red = this map's own maximum (not comparable across images)"
    if scaling == "shared":
        peak = f" ({shared_peak:.3g})" if shared_peak is not None else ""
        return f"shared scaling: red = the largest map of this {what}{peak}; colours compare"
    raise ValueError(f"scaling must be one of {SCALINGS}, not {scaling!r}")


def is_empty(cam: np.ndarray, peak: float | None = None) -> bool:
    """An all-zero map: nothing in the image raised the positive logit."""
    return (peak is not None and peak <= 0) or not np.nanmax(cam) > 0


EMPTY_TEXT = "Grad-CAM map is flat (all zero): no region stands out as raising the probability"


_JET_LUT = None


def _jet_lut() -> np.ndarray:
    global _JET_LUT
    if _JET_LUT is None:
        _JET_LUT = jet(np.linspace(0.0, 1.0, 256, dtype=np.float32))
    return _JET_LUT


def heat_rgba(values: np.ndarray, opacity: float) -> np.ndarray:
    """uint8 RGBA [H, W, 4]: the jet colours of `values` (in [0, 1]) at `opacity`;
    transparent where the value is NaN (outside what the model saw). A 256-step lookup:
    a 2000 x 2000 radiograph's map is coloured in a few tens of milliseconds."""
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    valid = np.isfinite(values)
    index = (np.clip(np.where(valid, values, 0.0), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    alpha = np.where(valid, round(opacity * 255), 0).astype(np.uint8)
    return np.dstack([_jet_lut()[index], alpha])


def to_gray8(pixels01: np.ndarray) -> np.ndarray:
    return (np.clip(np.asarray(pixels01, dtype=np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(
        np.uint8
    )


def blend(pixels01: np.ndarray, values: np.ndarray | None, opacity: float) -> np.ndarray:
    """uint8 RGB [H, W, 3]: the radiograph, with the map at `opacity` where it is defined
    (PIL's composite: C speed on a full-resolution radiograph)."""
    base = Image.fromarray(to_gray8(pixels01)).convert("RGB")
    if values is None or opacity == 0:
        return np.asarray(base)
    heat = heat_rgba(values, opacity)
    mixed = Image.composite(Image.fromarray(np.ascontiguousarray(heat[..., :3])), base,
                            Image.fromarray(np.ascontiguousarray(heat[..., 3])))  # fmt: skip
    return np.asarray(mixed)


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def colour_bar(height: int, width: int, font_size: int, labels: tuple[str, str, str]) -> Image:
    """A vertical jet bar (top = 1) with three labels (top, middle, bottom), on black."""
    panel = Image.new("RGB", (width, height), (0, 0, 0))
    bar_w = max(8, width // 4)
    pad = max(4, font_size // 2)
    inner = max(2, height - 2 * pad)
    ramp = np.linspace(1.0, 0.0, inner, dtype=np.float32)[:, None].repeat(bar_w, axis=1)
    panel.paste(Image.fromarray(jet(ramp)), (pad, pad))
    draw = ImageDraw.Draw(panel)
    font = _font(font_size)
    x = pad + bar_w + pad // 2
    for text, y in zip(labels, (pad, pad + inner // 2, pad + inner), strict=True):
        draw.text((x, y), text, fill=(255, 255, 255), font=font, anchor="lm")
    return panel


def render_overlay(
    pixels01: np.ndarray,
    values: np.ndarray | None,
    *,
    caption: Caption,
    scaling: str,
    opacity: float = 0.4,
    empty: bool = False,
) -> Image.Image:
    """The radiograph [H, W] at its own size with the map (display values in [0, 1] on the
    image's geometry, NaN where undefined; see map_to_image and scaled_map) blended on
    it, a colour bar on the right and the caption and scaling underneath."""
    h, w = pixels01.shape
    font_size = max(12, round(min(h, w) / 40))
    picture = Image.fromarray(blend(pixels01, None if empty else values, opacity))
    bar = colour_bar(h, max(5 * font_size, w // 10), font_size, ("1.0", "0.5", "0"))
    lines = [*caption.lines(), scaling, f"opacity {opacity:.2f}"]
    if empty:
        lines.append(EMPTY_TEXT)
    lines.append("Research use only; not a medical device.")
    total_w = w + bar.width
    font = _font(font_size)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    # wrapped, not cut: a 256 px demo image must still show the whole caption
    wrapped = [(part, line == EMPTY_TEXT) for line in lines
               for part in _wrap(measure, line, font, total_w - font_size)]  # fmt: skip
    line_h = round(font_size * 1.35)
    canvas = Image.new("RGB", (total_w, h + line_h * len(wrapped) + line_h // 2), (0, 0, 0))
    canvas.paste(picture, (0, 0))
    canvas.paste(bar, (w, 0))
    draw = ImageDraw.Draw(canvas)
    for i, (text, warn) in enumerate(wrapped):
        colour = (255, 210, 80) if warn else (235, 235, 235)
        draw.text((font_size // 2, h + line_h // 4 + i * line_h), text, fill=colour, font=font)
    return canvas


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> list[str]:
    """Greedy word wrap to `width` pixels (a single over-long word stays on its line)."""
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        trial = f"{current} {word}" if current else word
        if current and draw.textlength(trial, font=font) > width:
            lines.append(current)
            current = word
        else:
            current = trial
    return [*lines, current]


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    # level 1: a 2000 px overlay in ~0.4 s instead of ~1.2 s, files about a third larger
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def write_overlay(
    path: str | Path,
    pixels01: np.ndarray,
    cam: np.ndarray,
    peak: float,
    *,
    caption: Caption,
    scaling: str = "shared",
    shared_peak: float | None = None,
    center_crop: float | None = None,
    opacity: float = 0.4,
    what: str = "run",
    crop: Crop | None = None,
) -> Path:
    """One overlay PNG (atomically): `cam` [R, R] is the model-input map scaled to its own
    maximum with its `peak`; `pixels01` the decoded radiograph at its own resolution;
    `crop` the image's crop box and rotation, if the model saw it cropped."""
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}, not {scaling!r}")
    shared = shared_peak if scaling == "shared" else None
    values = map_to_image(scaled_map(cam, peak, shared), pixels01.shape, center_crop, crop)
    image = render_overlay(
        pixels01,
        values,
        caption=caption,
        scaling=scaling_text(scaling, shared, what),
        opacity=opacity,
        empty=is_empty(cam, peak),
    )
    return atomic_write_bytes(path, png_bytes(image))
