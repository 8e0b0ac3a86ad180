"""Grad-CAM on a real radiograph: right layer, right sign, frozen-safe, state untouched."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from core.explain import gradcam
from core.models.registry import create_model

IMAGE = Path(__file__).resolve().parents[1] / "data" / "images" / "person47_bacteria_229.jpeg"


@pytest.fixture(scope="module")
def radiograph() -> np.ndarray:
    return np.asarray(Image.open(IMAGE).convert("L"), dtype=np.uint8)


@pytest.fixture(scope="module")
def x(radiograph) -> torch.Tensor:
    x01 = torch.from_numpy(radiograph.astype(np.float32) / 255.0)
    return ((x01 * 2.0 - 1.0) * 1024.0)[None, None]


def _point_head_at_top(model, x) -> None:
    """Point the head at the difference between the image's top-half and bottom-half
    features, so the logit rises with top-like evidence: Grad-CAM must highlight the top."""
    with torch.no_grad():
        fmap = model.forward_feature_map(x)[0]
        half = fmap.shape[1] // 2
        d = fmap[:, :half].mean(dim=(1, 2)) - fmap[:, -half:].mean(dim=(1, 2))
        # Orthogonal to the mean feature, so the evidence map has both signs.
        m = fmap.mean(dim=(1, 2))
        w = d - (d @ m) / (m @ m) * m
        model.head[1].weight.copy_((w / w.norm())[None])
        model.head[1].bias.zero_()


@pytest.fixture(scope="module")
def model(x):
    model = create_model("random", seed=11).eval()
    _point_head_at_top(model, x)
    return model


def _reference_gradcam(model, x) -> np.ndarray:
    """Grad-CAM written out by hand from the model's own feature/head API."""
    with torch.enable_grad():
        fmap = model.forward_feature_map(x).detach().requires_grad_(True)
        logit = model.forward_head(torch.flatten(model.backbone_pool(fmap), 1))
        (grad,) = torch.autograd.grad(logit.sum(), fmap)
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * fmap).sum(1))[0].detach().numpy()
    cam = (cam - cam.min()) / (cam.max() - cam.min() + 1e-7)
    return cv2.resize(cam.astype(np.float32), (x.shape[-1], x.shape[-2]))


def test_cam_matches_hand_written_gradcam_on_real_image(model, x):
    cam = gradcam.explain(model, x, precision="float32")
    assert cam.shape == x.shape[-2:] and cam.dtype == np.float32
    assert cam.min() >= 0.0 and cam.max() <= 1.0
    assert cam.std() > 0.05, "map is (nearly) constant"
    # grad-cam sums 2048 weighted channels in float32 numpy: ~1e-3 rounding (checked
    # against a float64 computation); a wrong layer or sign would differ by ~1.
    np.testing.assert_allclose(cam, _reference_gradcam(model, x), atol=3e-3)


def test_explained_logit_is_the_models_logit(model, x):
    # Grad-CAM runs the model piecewise (features, pool, head); it must be model(x).
    with torch.no_grad():
        torch.testing.assert_close(gradcam._PositiveLogit(model)(x)[:, 0], model(x))


def test_bfloat16_map_agrees_with_float32(model, x):
    exact = gradcam.explain(model, x, precision="float32")
    fast = gradcam.explain(model, x, precision="bfloat16")
    assert model.backbone.layer4[-1].conv2.weight.is_contiguous()  # layout restored
    assert np.abs(fast - exact).max() < 0.1
    assert np.abs(fast - exact).mean() < 0.01
    assert np.corrcoef(fast.ravel(), exact.ravel())[0, 1] > 0.99


def test_highlight_follows_the_logit_sign(model, x):
    half = x.shape[-2] // 2
    cam_pos = gradcam.explain(model, x)
    assert cam_pos[:half].mean() > 2 * cam_pos[half:].mean()
    with torch.no_grad():
        model.head[1].weight.neg_()
    try:
        cam_neg = gradcam.explain(model, x)
    finally:
        with torch.no_grad():
            model.head[1].weight.neg_()
    assert cam_neg[half:].mean() > 2 * cam_neg[:half].mean()
    # Opposite evidence: where one map is hot the other is cold.
    assert cam_neg[cam_pos > 0.5].mean() < 0.2
    assert np.corrcoef(cam_pos.ravel(), cam_neg.ravel())[0, 1] < 0


def test_frozen_backbone_gives_the_same_map_and_state_is_restored(model, x):
    expected = gradcam.explain(model, x)
    frozen = create_model("random", seed=5)
    frozen.load_state_dict(model.state_dict())
    for p in frozen.backbone.parameters():
        p.requires_grad_(False)
    frozen.train()  # as during training: dropout active, BatchNorm in batch mode
    marker = torch.ones_like(frozen.head[1].weight)
    frozen.head[1].weight.grad = marker

    cam = gradcam.explain(frozen, x)
    np.testing.assert_allclose(cam, expected, atol=1e-5)
    assert frozen.training
    assert not any(p.requires_grad for p in frozen.backbone.parameters())
    assert all(p.requires_grad for p in frozen.head.parameters())
    assert frozen.head[1].weight.grad is marker
    # No hooks left behind: a later forward pass is plain.
    assert not gradcam.target_layer(frozen)._forward_hooks


def test_all_frozen_and_under_no_grad(model, x):
    expected = gradcam.explain(model, x)
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        with torch.no_grad():
            cam = gradcam.explain(model, x)
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
    np.testing.assert_allclose(cam, expected, atol=1e-5)


def test_overlay_png_and_npy(model, x, radiograph, tmp_path):
    cam = gradcam.explain(model, x)
    png = gradcam.overlay_png(radiograph, cam, tmp_path / "overlay.png", opacity=0.4)
    img = np.asarray(Image.open(png))
    assert img.shape == (*radiograph.shape, 3) and img.dtype == np.uint8
    # Hot pixels turn red, cold ones blue, relative to the plain radiograph.
    hot, cold = cam > 0.9, cam < 0.1
    assert (img[..., 0].astype(int) - img[..., 2])[hot].mean() > 30
    assert (img[..., 2].astype(int) - img[..., 0])[cold].mean() > 30

    plain = gradcam.overlay_rgb(radiograph.astype(np.uint16) * 257, cam, opacity=0.0)
    assert np.array_equal(plain[..., 0], radiograph) and np.array_equal(plain[..., 2], radiograph)

    # A map at model resolution is resized onto a larger original radiograph.
    big = np.asarray(Image.fromarray(radiograph).resize((448, 448)))
    assert gradcam.overlay_rgb(big, cam).shape == (448, 448, 3)

    npy = gradcam.save_cam_npy(cam, tmp_path / "cam.npy")
    np.testing.assert_array_equal(np.load(npy), cam)


def test_jet_colormap_endpoints():
    rgb = gradcam.jet(np.array([[0.0, 0.5, 1.0]]))
    assert tuple(rgb[0, 0]) == (0, 0, 128)  # dark blue
    assert tuple(rgb[0, 1]) == (128, 255, 128)  # green-ish centre
    assert tuple(rgb[0, 2]) == (128, 0, 0)  # dark red


def test_rejects_batches(model):
    with pytest.raises(ValueError, match="one image"):
        gradcam.explain(model, torch.zeros(2, 1, 32, 32))


def test_map_and_peak_equal_the_grad_cam_package(model, x):
    """core's Grad-CAM replaced the grad-cam package (GradCAM on layer4[-1] with
    ClassifierOutputTarget(0)); both give the same map on a real radiograph."""
    pytest.importorskip("pytorch_grad_cam")  # a development dependency only
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cam, peak = gradcam.explain_with_peak(model, x)
    with (
        gradcam._explainable(model),
        GradCAM(gradcam._PositiveLogit(model), [gradcam.target_layer(model)]) as library,
    ):
        expected = library(input_tensor=x, targets=[ClassifierOutputTarget(0)])[0]
        acts = library.activations_and_grads.activations[0]
        grads = library.activations_and_grads.gradients[0]
    raw = torch.relu((grads.mean(dim=(2, 3), keepdim=True) * acts).sum(dim=1))
    np.testing.assert_allclose(cam, np.clip(expected, 0, 1), atol=1e-4)
    assert peak == pytest.approx(float(raw.max()), rel=1e-4)


def test_a_map_with_no_positive_evidence_is_all_zero_with_peak_zero(x):
    model = create_model("random", seed=11).eval()
    with torch.no_grad():
        model.head[1].weight.zero_()  # the logit no longer depends on the features
    cam, peak = gradcam.explain_with_peak(model, x)
    assert peak == 0.0 and not cam.any()
