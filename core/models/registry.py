"""The backbones a run can start from, each describing the input it expects.

Every BPDModel takes the same input (1 channel, torchxrayvision range [-1024, 1024]);
the spec says what the backbone itself was trained on, and the model's adapter converts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch

from core.errors import InputError
from core.models import weights
from core.models.model import BPDModel


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    title: str
    channels: int
    resolution: int  # native training resolution; any resolution works
    normalization: str  # "xrv": [-1024, 1024]; "imagenet": [0, 1] then mean/std
    source: str

    def to_json(self) -> dict:
        return asdict(self)


BACKBONES: dict[str, BackboneSpec] = {
    "xrv": BackboneSpec(
        name="xrv",
        title="Adult chest X-ray ResNet-50 (torchxrayvision resnet50-res512-all)",
        channels=1,
        resolution=512,
        normalization="xrv",
        source="torchxrayvision resnet50-res512-all: PadChest, NIH, RSNA, SIIM, VinDr",
    ),
    "imagenet": BackboneSpec(
        name="imagenet",
        title="ImageNet ResNet-50 (torchvision IMAGENET1K_V2)",
        channels=3,
        resolution=224,
        normalization="imagenet",
        source="torchvision ResNet50_Weights.IMAGENET1K_V2",
    ),
    "random": BackboneSpec(
        name="random",
        title="ResNet-50, random initialisation (control)",
        channels=1,
        resolution=512,
        normalization="xrv",
        source="torchvision default initialisation",
    ),
}


@contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Seed torch's CPU generator for a block without disturbing the caller's stream."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def get_spec(init: str) -> BackboneSpec:
    try:
        return BACKBONES[init]
    except KeyError:
        raise InputError(f"unknown init {init!r}; choose one of {', '.join(BACKBONES)}") from None


def weights_available(init: str, weights_dir=None) -> bool:
    """True when `init` needs no download (random, or its weights file is present)."""
    get_spec(init)
    if init not in weights.PRETRAINED_INITS:
        return True
    return weights.find_weights(init, weights_dir) is not None


def build_model(init: str, *, dropout: float = 0.1, seed: int | None = None) -> BPDModel:
    """The architecture for `init` with random weights, for loading a saved state_dict
    (a fold model, an exported model): nothing is read or downloaded."""
    spec = get_spec(init)
    with _seeded(seed):
        backbone = weights.build_resnet(init)
        backbone.fc = torch.nn.Identity()
        model = BPDModel(backbone, spec.normalization, spec.channels, dropout)
    model.init = spec.name
    return model


def create_model(
    init: str,
    *,
    weights_dir=None,
    dropout: float = 0.1,
    allow_download: bool = True,
    seed: int | None = None,
) -> BPDModel:
    """A BPDModel with `init`'s backbone weights and a fresh head (the paper's init).

    Raises WeightsMissingError (naming the file, its folder and `bpd weights import`)
    when pretrained weights are absent and cannot be downloaded.
    """
    spec = get_spec(init)
    if init == "random":
        return build_model(init, dropout=dropout, seed=seed)
    # Fail on missing weights before spending time on anything else.
    backbone = weights.load_backbone(init, weights_dir, allow_download)
    with _seeded(seed):
        model = BPDModel(backbone, spec.normalization, spec.channels, dropout)
    model.init = spec.name
    return model
