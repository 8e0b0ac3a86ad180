"""Grey values in [0, 1] -> the square, fixed-size input the backbone expects.

Stored as uint16 (0..65535 spans [0, 1]): four times smaller than float32 and exact
enough for 8-16 bit radiographs. `to_model_input` maps it to torchxrayvision's
[-1024, 1024] (``(2 * x / maxval - 1) * 1024``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import InputError

if TYPE_CHECKING:
    from core.cohort.crops import Crop

# Bump when decoding or resizing changes, so old cache entries are not reused.
PREPROCESS_VERSION = 1
UINT16_MAX = 65535


@dataclass(frozen=True)
class PreprocessConfig:
    resolution: int = 512
    # None: the whole image is resized to N x N (aspect ratio not kept, as in the
    # authors' code). f in (0, 1]: a centred square of side f * min(H, W) is cut first
    # (1.0 = largest centred square, as torchxrayvision's XRayCenterCrop).
    center_crop: float | None = None

    def __post_init__(self) -> None:
        if not 8 <= int(self.resolution) <= 4096:
            raise InputError(f"resolution must be between 8 and 4096, not {self.resolution}")
        if self.center_crop is not None and not 0.0 < float(self.center_crop) <= 1.0:
            raise InputError(f"center crop must be in (0, 1], not {self.center_crop}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PreprocessConfig:
        crop = data.get("center_crop")
        return cls(int(data.get("resolution", 512)), None if crop is None else float(crop))

    def key(self) -> str:
        """Short stable name of these settings (and the decoder version) for the cache."""
        text = json.dumps({**self.to_json(), "v": PREPROCESS_VERSION}, sort_keys=True)
        return f"r{self.resolution}-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def preprocess(pixels01: np.ndarray, cfg: PreprocessConfig, crop: Crop | None = None) -> np.ndarray:
    """float [H, W] in [0, 1] -> np.uint16 [R, R]: the image's crop (core.cohort.crops)
    if it has one (a photographed film's deskew quad first, then the box and rotation on
    the upright grid), then the optional centre crop, then an antialiased resize.
    Training, prediction and explanation all come through here."""
    from PIL import Image

    arr = np.asarray(pixels01, dtype=np.float32)
    if arr.ndim != 2 or min(arr.shape) < 2:
        raise InputError(f"expected a 2-D image, got shape {arr.shape}")
    if crop is not None:
        from core.cohort.crops import apply_crop

        arr = apply_crop(arr, crop)
    if cfg.center_crop is not None:
        h, w = arr.shape
        side = max(2, round(min(h, w) * float(cfg.center_crop)))
        top, left = (h - side) // 2, (w - side) // 2
        arr = arr[top : top + side, left : left + side]
    size = int(cfg.resolution)
    if arr.shape != (size, size):
        # PIL widens the filter support when shrinking, i.e. antialiased resizing.
        img = Image.fromarray(np.ascontiguousarray(arr))
        arr = np.asarray(img.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
    out = np.clip(arr, 0.0, 1.0) * np.float32(UINT16_MAX) + np.float32(0.5)
    return out.astype(np.uint16)


def to_model_input(x: Any) -> Any:
    """uint16 array/tensor [..., R, R] -> float32 torch tensor in [-1024, 1024]."""
    import torch

    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if t.dtype == torch.uint16:
        t = t.to(torch.int32)
    return (t.to(torch.float32) / UINT16_MAX * 2.0 - 1.0) * 1024.0
