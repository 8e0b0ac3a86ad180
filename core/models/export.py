"""Exported models: a folder another site (or `bpd predict`) can use on its own.

    model.pt              state_dict only (loads with torch.load(weights_only=True))
    model.json            the model card: what it is, what it was trained and tested on,
                          how to feed it (preprocessing, and `crops`: whether its
                          training images were cut to crop boxes, and how), and that
                          it is for research only
    model.torchscript.pt  the eval model traced for [B, 1, R, R] input, for use without
                          BPD Studio (libtorch, plain PyTorch)

Loading rebuilds the architecture from the card and needs no pretrained weights: the
state_dict holds every parameter and BatchNorm statistic.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import platform
import warnings
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import torch

import core
from core.atomic import atomic_write_bytes, atomic_write_json
from core.cohort.crop_policy import crop_policy
from core.errors import InputError
from core.models.model import BPDModel
from core.models.registry import build_model, get_spec

FORMAT = "bpd-studio-model/1"
STATE_FILE = "model.pt"
CARD_FILE = "model.json"
TORCHSCRIPT_FILE = "model.torchscript.pt"
INTENDED_USE = (
    "Research only, not a medical device. Not validated for clinical decisions about "
    "individual patients; predictions must not guide diagnosis or treatment."
)


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "bpd": core.__version__}
    for name in ("torch", "torchvision", "torchxrayvision"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _torchscript_bytes(model: BPDModel, resolution: int) -> bytes:
    example = torch.zeros(1, 1, resolution, resolution)
    buf = io.BytesIO()
    # TorchScript is deprecated in favour of torch.export but is still what libtorch and
    # most deployment tools read; the issue asks for it, so silence just that notice.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"`torch\.jit\.\w+` is deprecated", category=FutureWarning
        )
        with torch.no_grad():
            traced = torch.jit.trace(model, example)
        torch.jit.save(traced, buf)
    return buf.getvalue()


def export_model(model: BPDModel, out_dir: str | Path, *, card: dict) -> Path:
    """Write the model folder; returns it.

    `card` holds what the caller knows about the model, by key: init (default: the
    model's own), strategy, cohort ({n_patients, n_positive, n_negative, ...}), metrics
    (cross-validated summary), preprocessing ({resolution, ...}), threshold, outcome,
    crops (core.cohort.crop_policy.crop_policy of the boxes it trained with; absent:
    whole images), and anything else worth keeping. Intended use, architecture, input
    description, package versions and file checksums are filled in here.
    """
    out_dir = Path(out_dir)
    init = card.get("init") or getattr(model, "init", None)
    if init is None:
        raise InputError("the model card needs 'init' (xrv, imagenet or random)")
    spec = get_spec(init)
    preprocessing = dict(card.get("preprocessing") or {})
    resolution = int(preprocessing.setdefault("resolution", spec.resolution))

    # Export a CPU copy in eval mode: the caller's model keeps its device and mode.
    cpu_model = copy.deepcopy(model).to("cpu").eval()
    cpu_model.to(memory_format=torch.contiguous_format)  # saved as scored (core.models.layout)
    state_buf = io.BytesIO()
    torch.save(cpu_model.state_dict(), state_buf)
    state_bytes = state_buf.getvalue()
    script_bytes = _torchscript_bytes(cpu_model, resolution)

    full_card = {
        **card,
        "format": FORMAT,
        "init": init,
        "initialisation": spec.to_json(),
        "strategy": card.get("strategy"),
        "cohort": card.get("cohort"),
        "metrics": card.get("metrics"),
        "threshold": float(card.get("threshold", 0.5)),
        "preprocessing": preprocessing,
        "crops": card.get("crops") or crop_policy(None),
        "intended_use": INTENDED_USE,
        "architecture": {
            "backbone": "resnet50",
            "head": "Dropout -> Linear(2048, 1)",
            "dropout": float(model.head[0].p),
        },
        "input": {
            "shape": ["B", 1, resolution, resolution],
            "dtype": "float32",
            "range": [-1024.0, 1024.0],
            "scaling": "(2 * pixel / maxval - 1) * 1024, grayscale, 0 = black",
        },
        "output": "one logit per image; probability = sigmoid(logit), positive outcome",
        "files": {
            STATE_FILE: {"sha256": _sha256(state_bytes)},
            TORCHSCRIPT_FILE: {"sha256": _sha256(script_bytes)},
        },
        "versions": package_versions(),
        "exported": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    # Weights first, card last: a folder with a card is a complete folder.
    atomic_write_bytes(out_dir / STATE_FILE, state_bytes)
    atomic_write_bytes(out_dir / TORCHSCRIPT_FILE, script_bytes)
    atomic_write_json(out_dir / CARD_FILE, full_card)
    return out_dir


def is_model_dir(path: str | Path) -> bool:
    path = Path(path)
    return (path / CARD_FILE).is_file() and (path / STATE_FILE).is_file()


def load_model_dir(path: str | Path, *, verify: bool = True) -> tuple[BPDModel, dict]:
    """The exported model (eval mode, CPU) and its card. Nothing is downloaded."""
    path = Path(path)
    card_path, state_path = path / CARD_FILE, path / STATE_FILE
    if not card_path.is_file() or not state_path.is_file():
        raise InputError(
            f"not an exported model folder (needs {CARD_FILE} and {STATE_FILE})", file=path
        )
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"unreadable model card: {exc}", file=card_path) from None
    if card.get("format") != FORMAT:
        raise InputError(f"unknown model format {card.get('format')!r}", file=card_path)
    data = state_path.read_bytes()
    expected = card.get("files", {}).get(STATE_FILE, {}).get("sha256")
    if verify and expected and _sha256(data) != expected:
        raise InputError("model.pt does not match the checksum in model.json", file=state_path)
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # refuse pickled objects and damaged files alike
        raise InputError(
            f"cannot load the state_dict ({type(exc).__name__})", file=state_path
        ) from None
    model = build_model(card["init"], dropout=card.get("architecture", {}).get("dropout", 0.1))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise InputError(
            f"state_dict does not fit the model card: {str(exc).splitlines()[0]}", file=state_path
        ) from None
    return model.eval(), card
