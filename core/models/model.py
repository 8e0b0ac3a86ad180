"""The BPD model: a ResNet-50 backbone, an input adapter, and a one-logit head.

Every model takes the same input, whatever its initialisation: a 1-channel image in
torchxrayvision's range [-1024, 1024]. The adapter turns it into what the backbone was
pretrained on (ImageNet: 3 channels, mean/std), so data loading is identical for every
backbone. Features and head are exposed separately (as in timm) so probing, freezing,
cached features and Grad-CAM need no hacks.
"""

from __future__ import annotations

import torch
from torch import nn

# Block names of a torchvision-style ResNet, input to output. Freezing and learning-rate
# groups are defined on these names.
STEM = ("conv1", "bn1")
BLOCKS = ("layer1", "layer2", "layer3", "layer4")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class InputAdapter(nn.Module):
    """Maps a [-1024, 1024] grayscale batch to the backbone's expected input."""

    def __init__(self, normalization: str, channels: int):
        super().__init__()
        if normalization not in ("xrv", "imagenet"):
            raise ValueError(f"unknown normalization {normalization!r}")
        self.normalization = normalization
        self.channels = channels
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalization == "xrv":
            return x if self.channels == 1 else x.expand(-1, self.channels, -1, -1)
        x01 = (x / 1024.0 + 1.0) / 2.0
        return (x01.expand(-1, 3, -1, -1) - self.mean) / self.std


class BPDHead(nn.Sequential):
    """Dropout(p) -> Linear(2048, 1); Xavier-uniform weight, bias 0.01 (the paper's)."""

    def __init__(self, in_features: int = 2048, dropout: float = 0.1):
        linear = nn.Linear(in_features, 1)
        nn.init.xavier_uniform_(linear.weight)
        nn.init.constant_(linear.bias, 0.01)
        super().__init__(nn.Dropout(dropout), linear)


class BPDModel(nn.Module):
    """ResNet-50 features + BPD head. `backbone` is a torchvision-style ResNet
    (conv1, bn1, relu, maxpool, layer1-4) whose own classifier is not used."""

    def __init__(
        self, backbone: nn.Module, normalization: str, channels: int, dropout: float = 0.1
    ):
        super().__init__()
        self.adapter = InputAdapter(normalization, channels)
        self.backbone = backbone
        self.head = BPDHead(2048, dropout)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 1, H, W] in [-1024, 1024] -> pooled features [B, 2048]."""
        return torch.flatten(self.backbone_pool(self.forward_feature_map(x)), 1)

    def forward_feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """The last block's map [B, 2048, h, w] (the Grad-CAM target)."""
        b = self.backbone
        x = self.adapter(x)
        x = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        x = b.layer1(x)
        x = b.layer2(x)
        x = b.layer3(x)
        return b.layer4(x)

    @staticmethod
    def backbone_pool(fmap: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.adaptive_avg_pool2d(fmap, 1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """[B, 2048] -> one logit per image [B]."""
        return self.head(features).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def block(self, name: str) -> nn.Module:
        return getattr(self.backbone, name)
