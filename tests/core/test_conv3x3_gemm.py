"""The matrix-product backward of small 3x3 convolutions gives autograd's gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from core.training import conv3x3_gemm
from core.training.conv3x3_gemm import LIMITS_BF16, conv3x3, wants_gemm_backward


def _case(channels: int, size: int, stride: int, dtype=torch.float32):
    g = torch.Generator().manual_seed(size * 10 + stride)
    conv = nn.Conv2d(channels, 2 * channels, 3, stride, 1, bias=False)
    conv.weight.data = torch.randn(conv.weight.shape, generator=g)
    conv = conv.to(memory_format=torch.channels_last)
    x = torch.randn(3, channels, size, size, generator=g).to(dtype)
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    upstream = torch.randn(conv(x.float()).shape, generator=g)
    return conv, x, upstream


def _grads(fn, conv, x, upstream):
    conv.weight.grad, x.grad = None, None
    out = fn(x)
    (out.float() * upstream).sum().backward()
    return out.detach().float(), x.grad.float().clone(), conv.weight.grad.clone()


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


# (input size, stride): input gradient as a matrix product (output <= 8x8) and by
# oneDNN alone (larger outputs), stride 1 and 2, odd sizes included. The limits are
# given, so both branches are tested whatever this CPU's own limits are.
@pytest.mark.parametrize("size,stride", [(8, 1), (7, 1), (16, 2), (9, 2), (12, 1), (28, 2)])
def test_gradients_equal_autograd_in_fp32(size, stride):
    conv, x, upstream = _case(8, size, stride)
    assert wants_gemm_backward(conv, x, LIMITS_BF16)
    ref = _grads(conv, conv, x, upstream)
    got = _grads(lambda t: conv3x3(conv, t, LIMITS_BF16), conv, x, upstream)
    for a, b in zip(got, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert conv.weight.grad.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("size,stride", [(8, 1), (16, 2), (14, 1)])
def test_bf16_autocast_gradients_match_fp32_within_bf16_rounding(size, stride):
    conv, x, upstream = _case(16, size, stride)
    ref = _grads(conv, conv, x, upstream)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = _grads(lambda t: conv3x3(conv, t), conv, x, upstream)
        native = _grads(conv, conv, x, upstream)
    assert conv.weight.grad.dtype == torch.float32  # the parameter's own dtype
    for g, n, r in zip(got, native, ref, strict=True):
        assert _rel(g, r) < 2e-2
        assert _rel(g, r) < 2 * _rel(n, r) + 1e-3  # no worse than oneDNN's own bf16


def test_only_small_plain_3x3_convolutions_take_the_path():
    conv, x, _ = _case(4, 8, 1)
    limits = LIMITS_BF16
    assert wants_gemm_backward(conv, x, limits)
    assert not wants_gemm_backward(conv, x.detach().contiguous(), limits)  # NCHW
    big = torch.zeros(1, 4, 15, 15).contiguous(memory_format=torch.channels_last)
    assert not wants_gemm_backward(conv, big, limits)  # 15x15: native kernels are faster
    assert not wants_gemm_backward(nn.Conv2d(4, 4, 1), x, limits)
    assert not wants_gemm_backward(nn.Conv2d(4, 4, 3, padding=1, bias=True), x, limits)
    dilated = nn.Conv2d(4, 4, 3, padding=2, dilation=2, bias=False)
    assert not wants_gemm_backward(dilated, x, limits)


def test_in_fp32_only_4x4_outputs_take_the_path_in_bf16_up_to_14x14():
    """oneDNN's own fp32 backward is faster down to 8x8 outputs; its bf16 one is not.
    The limits follow the precision the convolution computes in, autocast included."""
    conv, x8, _ = _case(4, 8, 1)
    x4 = torch.zeros(1, 4, 4, 4).contiguous(memory_format=torch.channels_last)
    assert conv3x3_gemm.gemm_limits(x8) == conv3x3_gemm.LIMITS_FP32
    assert wants_gemm_backward(conv, x4) and not wants_gemm_backward(conv, x8)
    assert conv3x3_gemm.gemm_limits(x8.detach().bfloat16()) == LIMITS_BF16
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert conv3x3_gemm.gemm_limits(x8) == LIMITS_BF16
        assert wants_gemm_backward(conv, x8)


def test_the_input_gradient_limit_travels_with_the_call():
    """An 8x8 output with the fp32 limits given: the weight gradient is still a matrix
    product, the input gradient comes from oneDNN's kernel; both equal autograd's."""
    conv, x, upstream = _case(8, 8, 1)
    ref = _grads(conv, conv, x, upstream)
    got = _grads(lambda t: conv3x3(conv, t, conv3x3_gemm.LIMITS_FP32), conv, x, upstream)
    for a, b in zip(got, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
