"""The forward pass of a training step, with the work that does not need doing removed.

Same model, same parameters, same result (up to the rounding of the precision in use);
only how the pass is computed changes:

- Frozen prefix (input adapter, stem, layer1 and every block not yet unfrozen) runs
  under no_grad: no autograd graph, no activations kept for a backward pass, and the
  first trainable block gets an input that needs no gradient.
- Frozen BatchNorm in eval mode (`frozen_bn_train_mode=False`) is folded into the
  preceding convolution (w * gamma / sqrt(var + eps), shifted bias): one pass over each
  activation instead of two. With the paper's default (frozen BN in train mode, batch
  statistics, running statistics updated) nothing can be folded and the blocks run as
  they are.
- On a CPU with channels_last tensors the 1x1 convolutions of trainable blocks run as
  matrix products over the NHWC view (F.linear): the weight gradient is then one GEMM,
  where oneDNN's bf16 weight-gradient convolution kernel reaches a fraction of the
  matrix unit's speed (measured 2-10x slower for ResNet-50's 1x1 shapes on 2 cores).
  3x3 convolutions with small outputs keep oneDNN's forward and compute their gradients
  as matrix products too (core.training.conv3x3_gemm).

Used for training steps only; scoring and Grad-CAM call the model's own forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.models.model import BPDModel
from core.models.resnet import Bottleneck
from core.training.conv3x3_gemm import conv3x3, wants_gemm_backward

BLOCKS = ("layer1", "layer2", "layer3", "layer4")


class FastForward:
    """forward_features of a BPDModel for one epoch's set of trainable blocks."""

    def __init__(self, model: BPDModel, *, gemm_1x1: bool, fold_frozen_bn: bool):
        self.model = model
        self.gemm_1x1 = gemm_1x1
        self.fold_frozen_bn = fold_frozen_bn
        self.trainable: tuple[str, ...] = BLOCKS
        self.whole_backbone = True
        self._folded: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def prepare(self, trainable_blocks: tuple[str, ...], whole_backbone: bool) -> None:
        """Call at the start of an epoch, after freezing and train/eval modes are set."""
        self.trainable = BLOCKS if whole_backbone else tuple(trainable_blocks)
        self.whole_backbone = whole_backbone
        self._folded = {}
        if self.fold_frozen_bn and not whole_backbone and self._prefix_bn_in_eval():
            self._fold_prefix()

    # ----- the frozen prefix -------------------------------------------------------------
    def _prefix_blocks(self) -> list[str]:
        if self.whole_backbone:
            return []
        first = min((BLOCKS.index(b) for b in self.trainable), default=len(BLOCKS))
        return list(BLOCKS[:first])

    def _prefix_modules(self) -> list[nn.Module]:
        b = self.model.backbone
        return [b.conv1, b.bn1, *(getattr(b, name) for name in self._prefix_blocks())]

    def _prefix_bn_in_eval(self) -> bool:
        bns = [
            m
            for module in self._prefix_modules()
            for m in module.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)
        ]
        blocks = [getattr(self.model.backbone, n) for n in self._prefix_blocks()]
        plain = all(isinstance(m, Bottleneck) for blk in blocks for m in blk.children())
        return plain and all(not m.training and m.track_running_stats for m in bns)

    @torch.no_grad()
    def _fold_prefix(self) -> None:
        b = self.model.backbone
        pairs = [(b.conv1, b.bn1)]
        for name in self._prefix_blocks():
            for blk in getattr(b, name).children():
                pairs += [(blk.conv1, blk.bn1), (blk.conv2, blk.bn2), (blk.conv3, blk.bn3)]
                if blk.downsample is not None:
                    pairs.append((blk.downsample[0], blk.downsample[1]))
        for conv, bn in pairs:
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            weight = conv.weight * scale.view(-1, 1, 1, 1)
            bias = bn.bias - bn.running_mean * scale
            if conv.bias is not None:
                bias = bias + conv.bias * scale
            if weight.device.type == "cpu" and conv.weight.is_contiguous(
                memory_format=torch.channels_last
            ):
                weight = weight.contiguous(memory_format=torch.channels_last)
            self._folded[id(conv)] = (weight, bias)

    def _conv_folded(self, conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        w, bias = self._folded[id(conv)]
        return F.conv2d(x, w, bias, conv.stride, conv.padding, conv.dilation, conv.groups)

    def _bottleneck_folded(self, blk: Bottleneck, x: torch.Tensor) -> torch.Tensor:
        out = F.relu_(self._conv_folded(blk.conv1, x))
        out = F.relu_(self._conv_folded(blk.conv2, out))
        out = self._conv_folded(blk.conv3, out)
        identity = x if blk.downsample is None else self._conv_folded(blk.downsample[0], x)
        return F.relu_(out.add_(identity))

    def _prefix(self, x: torch.Tensor) -> torch.Tensor:
        m, b = self.model, self.model.backbone
        with torch.no_grad():
            x = m.adapter(x)
            if self._folded:
                x = b.maxpool(F.relu_(self._conv_folded(b.conv1, x)))
                for name in self._prefix_blocks():
                    for blk in getattr(b, name).children():
                        x = self._bottleneck_folded(blk, x)
                return x
            x = b.maxpool(b.relu(b.bn1(b.conv1(x))))
            for name in self._prefix_blocks():
                x = getattr(b, name)(x)
            return x

    # ----- the trainable blocks ----------------------------------------------------------
    def _conv(self, conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        if (
            self.gemm_1x1
            and conv.kernel_size == (1, 1)
            and conv.groups == 1
            and conv.padding == (0, 0)
            and x.is_contiguous(memory_format=torch.channels_last)
        ):
            sh, sw = conv.stride
            if (sh, sw) != (1, 1):
                x = x[:, :, ::sh, ::sw]
            w = conv.weight.view(conv.out_channels, conv.in_channels)
            return F.linear(x.permute(0, 2, 3, 1), w, conv.bias).permute(0, 3, 1, 2)
        if self.gemm_1x1 and wants_gemm_backward(conv, x):
            return conv3x3(conv, x)
        return conv(x)

    def _bottleneck(self, blk: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if not self.gemm_1x1 or not isinstance(blk, Bottleneck):
            return blk(x)
        out = blk.relu(blk.bn1(self._conv(blk.conv1, x)))
        out = blk.relu(blk.bn2(self._conv(blk.conv2, out)))
        out = blk.bn3(self._conv(blk.conv3, out))
        if blk.downsample is not None:
            ds = blk.downsample
            identity = ds[1](self._conv(ds[0], x)) if len(ds) == 2 else ds(x)
        else:
            identity = x
        return blk.relu(out + identity)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 1, H, W] -> pooled features [B, 2048]; gradients reach only the
        trainable blocks (and, after it, the head)."""
        m, b = self.model, self.model.backbone
        if self.whole_backbone:
            x = m.adapter(x)
            x = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        else:
            x = self._prefix(x)
        for name in BLOCKS:
            if name in self._prefix_blocks():
                continue
            for blk in getattr(b, name).children():
                x = self._bottleneck(blk, x)
        return torch.flatten(m.backbone_pool(x), 1)


def wants_gemm_1x1(device: torch.device, channels_last: bool) -> bool:
    """The 1x1-as-GEMM rewrite pays off on CPUs (oneDNN); cuDNN needs no help."""
    return device.type == "cpu" and channels_last
