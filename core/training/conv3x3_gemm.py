"""3x3 convolutions of trainable blocks whose backward pass runs as matrix products.

On this CPU class (oneDNN, bf16, channels_last) the backward kernels of a 3x3
convolution with a small output (layer3 and layer4 of ResNet-50 below 256 px) reach a
fraction of the matrix unit's speed: at 128 px, batch 16, layer4's backward took 21 ms
where the same numbers as matrix products take 5 ms. Such a convolution keeps oneDNN's
forward and computes its gradients as

- weight: grad_out^T @ im2col(x), both over the NHWC view;
- input: col2im(grad_out @ W), summed in fp32, when the output is at most 8x8;
  otherwise oneDNN's input-gradient kernel alone (it is slower when asked for both).

Same gradients up to the rounding of the precision in use (tested against autograd in
fp32). Larger outputs keep the native kernels, which are faster there. In fp32
oneDNN's own backward is the faster one down to 8x8, so there only 4x4 outputs
(layer4 at 128 px) take this path (`gemm_limits`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Largest outputs (H x W pixels: weight gradient, input gradient) measured faster as
# matrix products, by the precision the convolution computes in (2-core Xeon):
# bf16 (AMX): 14 x 14 (layer4 at 224 px, layer3/4 at 128 px) and 8 x 8.
LIMITS_BF16 = (196, 64)
# fp32, AVX2 (benchmarks/avx2.sh) and AVX-512 alike: oneDNN's own backward is faster
# for layer3's 8 x 8 outputs at 128 px (strided 17.5 vs 20.0 ms AVX2, 9.9 vs 10.1
# AVX-512), the matrix products for layer4's 4 x 4 (15.8 vs 24.9 ms, 9.4 vs 17.3); the
# real step of the layer3 and final stages 1-5% faster than with the bf16 limits.
LIMITS_FP32 = (16, 16)


def gemm_limits(x: torch.Tensor) -> tuple[int, int]:
    """(weight-gradient, input-gradient) output-size limits for input x here: bf16's
    where x is bf16 or autocast will make it so, else fp32's."""
    kind = x.device.type
    bf16 = x.dtype == torch.bfloat16 or (
        torch.is_autocast_enabled(kind) and torch.get_autocast_dtype(kind) == torch.bfloat16
    )
    return LIMITS_BF16 if bf16 else LIMITS_FP32


def wants_gemm_backward(
    conv: nn.Conv2d, x: torch.Tensor, limits: tuple[int, int] | None = None
) -> bool:
    """A plain 3x3 convolution (padding 1, no bias) on a channels_last input whose
    output is small enough (`limits`, default `gemm_limits(x)`) for the
    matrix-product backward to be faster."""
    if (
        conv.kernel_size != (3, 3)
        or conv.padding != (1, 1)
        or conv.dilation != (1, 1)
        or conv.groups != 1
        or conv.bias is not None
        or conv.stride[0] != conv.stride[1]
        or not x.is_contiguous(memory_format=torch.channels_last)
    ):
        return False
    s = conv.stride[0]
    ho, wo = (x.shape[2] - 1) // s + 1, (x.shape[3] - 1) // s + 1
    return ho * wo <= (limits or gemm_limits(x))[0]


def conv3x3(
    conv: nn.Conv2d, x: torch.Tensor, limits: tuple[int, int] | None = None
) -> torch.Tensor:
    """conv(x) with the matrix-product backward (the input gradient too where the output
    is within `limits`' second number); autocast's casts made explicit so the autograd
    function sees one dtype."""
    weight = conv.weight
    if torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
        x, weight = x.to(dtype), weight.to(dtype)
    input_limit = (limits or gemm_limits(x))[1]
    return _Conv3x3GemmBackward.apply(x, weight, conv.stride[0], input_limit)


def _im2col(x: torch.Tensor, stride: int, ho: int, wo: int) -> torch.Tensor:
    """[N, C, H, W] (channels_last) -> [N*ho*wo, 9*C], columns ordered (kh, kw, C)."""
    xs = F.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1)
    taps = [
        xs[:, i : i + stride * ho : stride, j : j + stride * wo : stride, :]
        for i in range(3)
        for j in range(3)
    ]
    return torch.stack(taps, dim=3).reshape(-1, 9 * x.shape[1])


def _col2im(cols: torch.Tensor, shape: torch.Size, stride: int, ho: int, wo: int):
    """Adjoint of _im2col, accumulated in fp32: [N*ho*wo, 9*C] -> [N, C, H, W]."""
    n, c, h, w = shape
    taps = cols.view(n, ho, wo, 9, c)
    out = torch.zeros(n, h + 2, w + 2, c, dtype=torch.float32, device=cols.device)
    for k in range(9):
        i, j = divmod(k, 3)
        out[:, i : i + stride * ho : stride, j : j + stride * wo : stride, :] += taps[:, :, :, k]
    return out[:, 1 : h + 1, 1 : w + 1, :].permute(0, 3, 1, 2).to(cols.dtype)


class _Conv3x3GemmBackward(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, x: torch.Tensor, weight: torch.Tensor, stride: int, input_limit: int
    ) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.stride = stride
        ctx.input_limit = input_limit
        with torch.autocast(x.device.type, enabled=False):
            return F.conv2d(x, weight, None, stride, 1)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x, weight = ctx.saved_tensors
        s = ctx.stride
        ho, wo = grad_out.shape[2], grad_out.shape[3]
        c_out = weight.shape[0]
        grad_out = grad_out.contiguous(memory_format=torch.channels_last)
        g = grad_out.permute(0, 2, 3, 1).reshape(-1, c_out)  # [N*ho*wo, C_out]
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            if ho * wo <= ctx.input_limit:
                w_mat = weight.permute(0, 2, 3, 1).reshape(c_out, -1)  # [C_out, 9*C_in]
                grad_x = _col2im(g @ w_mat, x.shape, s, ho, wo)
            else:
                grad_x = torch.ops.aten.convolution_backward(
                    grad_out, x, weight, None, [s, s], [1, 1], [1, 1],
                    False, [0, 0], 1, [True, False, False],
                )[0]  # fmt: skip
        if ctx.needs_input_grad[1]:
            cols = _im2col(x, s, ho, wo)
            # [C_out, kh, kw, C_in] viewed as [C_out, C_in, kh, kw]: channels_last strides
            grad_w = (g.t() @ cols).view(c_out, 3, 3, -1).permute(0, 3, 1, 2)
        return grad_x, grad_w, None, None
