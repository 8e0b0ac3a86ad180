"""Grad-CAM for the single BPD logit, on the ResNet-50's last bottleneck block.

Computed here, scaled as the grad-cam package scales it (its ClassifierOutputTarget on
one target layer; tests/core/test_gradcam.py compares the two). Works whether or not
the backbone's parameters are frozen: the last block's output is cut from the graph and
made a leaf that requires grad, so the backward pass reaches it (and only the head in
between), never the parameters.
The model's training mode, requires_grad flags and .grad tensors are left as found.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from core.atomic import atomic_write, atomic_write_bytes
from core.explain.overlay import jet  # the colours live torch-free, for the app
from core.models.layout import weights_in


class _PositiveLogit(nn.Module):
    """The model run piecewise (backbone, pool, head) so that the backbone alone may run
    in bfloat16: [B] logits -> [B, 1]."""

    def __init__(self, model: nn.Module, bf16: bool = False):
        super().__init__()
        self.model = model
        self.bf16 = bf16

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Only the backbone runs in bfloat16; the map, its gradient and the head stay
        # float32 (the leaf hook casts the last block's output back).
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            fmap = self.model.forward_feature_map(x)
        pooled = torch.flatten(self.model.backbone_pool(fmap), 1)
        return self.model.forward_head(pooled).unsqueeze(1)


def target_layer(model: nn.Module) -> nn.Module:
    return model.backbone.layer4[-1]


@contextlib.contextmanager
def _explainable(model: nn.Module):
    """Eval mode, no parameter gradients, a grad-requiring leaf at the target layer;
    everything restored afterwards. Yields a dict whose "fmap" is the last leaf made."""
    params = list(model.parameters())
    saved = [(p.requires_grad, p.grad) for p in params]
    was_training = model.training

    made: dict[str, torch.Tensor] = {}

    def leaf(_module, _inputs, output):
        made["fmap"] = output.detach().float().requires_grad_(True)
        return made["fmap"]

    handle = target_layer(model).register_forward_hook(leaf)
    try:
        model.eval()
        for p in params:
            p.requires_grad_(False)
        with torch.enable_grad():
            yield made
    finally:
        handle.remove()
        for p, (flag, grad) in zip(params, saved, strict=True):
            p.requires_grad_(flag)
            p.grad = grad
        model.train(was_training)


def explain(model: nn.Module, x: torch.Tensor, *, precision: str = "float32") -> np.ndarray:
    """Grad-CAM of the positive logit for one image, scaled to its own maximum (see
    explain_with_peak for the scale). Returns float32 [H, W] in [0, 1]."""
    return explain_with_peak(model, x, precision=precision)[0]


def explain_with_peak(
    model: nn.Module, x: torch.Tensor, *, precision: str = "float32"
) -> tuple[np.ndarray, float]:
    """Grad-CAM of the positive logit for one image, and the map's peak before scaling.

    x: [1, 1, H, W] (or [H, W]) float in [-1024, 1024], the model's input.
    precision: "float32" (default; ~0.3 s at 512 px on 2 threads of a recent Xeon) or
    "bfloat16" (backbone only, channels_last; about 2x faster on CPUs with native bf16,
    and the map agrees with float32 to ~0.01 on real radiographs, see tests).
    Returns (float32 [H, W] in [0, 1], peak): the map scaled to its own maximum (all zeros
    when nothing supports the positive class), and that maximum of the unscaled map
    (ReLU of the gradient-weighted feature maps; 0.0 for an all-zero map). map * peak is on
    one scale for every image of a model, which a run-wide overlay needs.
    """
    if x.ndim == 2:
        x = x[None, None]
    if x.ndim != 4 or x.shape[:2] != (1, 1):
        raise ValueError(f"expected one image [1, 1, H, W], got {tuple(x.shape)}")
    if precision not in ("float32", "bfloat16"):
        raise ValueError(f"precision must be float32 or bfloat16, not {precision!r}")
    bf16 = precision == "bfloat16"
    device = next(model.parameters()).device
    x = x.detach().to(device=device, dtype=torch.float32)
    # oneDNN's fast bfloat16 path needs input and weights channels_last (converting only
    # the input gains nothing)
    layout = weights_in(model.backbone, torch.channels_last) if bf16 else contextlib.nullcontext()
    if bf16:
        x = x.contiguous(memory_format=torch.channels_last)
    with _explainable(model) as made, layout:
        logit = _PositiveLogit(model, bf16)(x)[:, 0]
        fmap = made["fmap"]
        (grad,) = torch.autograd.grad(logit.sum(), fmap)
    # Grad-CAM: ReLU(sum_k mean(dy/dA_k) * A_k) on the last block
    weights = grad.float().mean(dim=(2, 3), keepdim=True)
    raw = torch.relu((weights * fmap.detach().float()).sum(dim=1))[0].cpu()
    # As the grad-cam package scales it (its 1.5 line, which this replaces: it imported
    # torchvision, OpenCV and matplotlib, seconds per cold start and ~170 MB of a bundle):
    # to [0, 1], bilinear to the input's size (half-pixel centres, as cv2.resize), again.
    small = _to_unit(raw)
    cam = F.interpolate(small[None, None], size=tuple(x.shape[-2:]), mode="bilinear",
                        align_corners=False)[0, 0]  # fmt: skip
    cam = _to_unit(cam).numpy()
    peak = float(raw.max()) if cam.max() > 0 else 0.0
    return np.clip(cam, 0.0, 1.0).astype(np.float32), peak


def _to_unit(m: torch.Tensor) -> torch.Tensor:
    """min to 0, max to ~1 (an all-equal map becomes all zeros)."""
    m = m - m.min()
    return m / (1e-7 + m.max())


def _gray_to_unit(gray: np.ndarray) -> np.ndarray:
    if gray.ndim != 2:
        raise ValueError(f"expected a grayscale image [H, W], got {gray.shape}")
    if gray.dtype == np.uint8:
        return gray.astype(np.float32) / 255.0
    if gray.dtype == np.uint16:
        return gray.astype(np.float32) / 65535.0
    return np.clip(gray.astype(np.float32), 0.0, 1.0)  # already [0, 1]


def _resize_cam(cam: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if cam.shape == shape:
        return cam
    resized = Image.fromarray(cam.astype(np.float32)).resize(
        (shape[1], shape[0]), Image.Resampling.BILINEAR
    )
    return np.asarray(resized, dtype=np.float32)


def overlay_rgb(gray: np.ndarray, cam: np.ndarray, opacity: float = 0.4) -> np.ndarray:
    """Radiograph (uint8, uint16 or float [0, 1]) with the heat map blended on top.

    The map is resized to the radiograph; opacity 0 shows the radiograph only.
    Returns uint8 RGB [H, W, 3].
    """
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    base = np.repeat(_gray_to_unit(gray)[..., None] * 255.0, 3, axis=2)
    heat = jet(_resize_cam(cam, gray.shape)).astype(np.float32)
    blended = (1.0 - opacity) * base + opacity * heat
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def overlay_png(
    gray: np.ndarray, cam: np.ndarray, path: str | Path, *, opacity: float = 0.4
) -> Path:
    """Write the overlay as an RGB PNG (atomically). Returns the path."""
    import io

    buf = io.BytesIO()
    Image.fromarray(overlay_rgb(gray, cam, opacity)).save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())


def save_cam_npy(cam: np.ndarray, path: str | Path) -> Path:
    """The raw map (float32 [H, W] in [0, 1]) for further analysis."""
    return atomic_write(path, lambda fh: np.save(fh, np.asarray(cam, dtype=np.float32)))
