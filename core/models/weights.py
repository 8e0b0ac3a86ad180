"""Pretrained weights: where they live, how they arrive, how they are checked.

Every file is loaded with ``torch.load(weights_only=True)``: torchxrayvision's own
``ResNet(weights=...)`` unpickles with ``weights_only=False`` (arbitrary code on load), so
we use only its name resolution and download path and build the architecture ourselves,
exactly as it does. Sites without internet copy the file in with ``bpd weights import``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import socket
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import getproxies

import torch
from torch import nn

from core import paths
from core.atomic import atomic_write
from core.errors import InputError, WeightsMissingError
from core.models.resnet import resnet50

log = logging.getLogger(__name__)

XRV_WEIGHTS = "resnet50-res512-all"
XRV_NUM_CLASSES = 18
PRETRAINED_INITS = ("xrv", "imagenet")
# How long to wait for the download host before declaring the machine offline.
PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class WeightsSource:
    """One pretrained file: its exact name, folder (under weights_dir) and origin."""

    init: str
    file_name: str
    subdir: str
    url: str
    # torchvision names files <name>-<first 8 hex of sha256>.pth; None when unknown.
    sha256_prefix: str | None = None

    def folder(self, weights_dir: str | Path | None = None) -> Path:
        root = Path(weights_dir) if weights_dir is not None else paths.weights_dir()
        return root / self.subdir

    def path(self, weights_dir: str | Path | None = None) -> Path:
        return self.folder(weights_dir) / self.file_name


def _import_xrv():
    """Import torchxrayvision without letting it silence every warning in the process
    (its models module calls ``warnings.filterwarnings("ignore")`` at import)."""
    if "torchxrayvision" in sys.modules:
        return sys.modules["torchxrayvision"]
    with warnings.catch_warnings():
        import torchxrayvision

    return torchxrayvision


def weights_source(init: str) -> WeightsSource:
    if init == "xrv":
        url = _import_xrv().models.model_urls[XRV_WEIGHTS]["weights_url"]
        # Same file name rule as xrv.models.get_weights: the URL's basename.
        return WeightsSource("xrv", os.path.basename(url), "xrv", url)
    if init == "imagenet":
        # torchvision only here, where its file is wanted: importing it costs seconds
        # (torch._dynamo), which loading a trained model must not pay
        import torchvision

        url = torchvision.models.ResNet50_Weights.IMAGENET1K_V2.url
        file_name = os.path.basename(urlparse(url).path)
        prefix = file_name.rsplit("-", 1)[-1].split(".")[0]
        return WeightsSource("imagenet", file_name, "torchvision", url, prefix)
    raise InputError(f"no pretrained weights for init {init!r}; choose one of {PRETRAINED_INITS}")


def build_resnet(init: str) -> nn.Module:
    """The exact architecture the init's weights file was saved from (classifier included):
    torchvision's ResNet-50 as core.models.resnet builds it, same state_dict keys."""
    if init == "imagenet":
        return resnet50()
    if init in ("xrv", "random"):
        # As torchxrayvision's ResNet: 18 pathologies, single-channel stem.
        model = resnet50(num_classes=XRV_NUM_CLASSES)
        model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        return model
    raise InputError(f"unknown init {init!r}; choose xrv, imagenet or random")


def _host_reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None when the URL's host accepts a connection, else the reason it does not."""
    if getproxies().get("https"):
        return None  # behind a proxy only the download itself can tell
    host = urlparse(url).hostname or ""
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return None
    except OSError as exc:
        return f"cannot reach {host}: {exc.strerror or exc}"


def _missing(src: WeightsSource, weights_dir, reason: str) -> WeightsMissingError:
    folder = src.folder(weights_dir)
    err = WeightsMissingError(
        f"pretrained weights for init '{src.init}' are not on this machine ({reason}). "
        f"Put the file {src.file_name} into {folder} (download it from {src.url} on a "
        f"machine with internet), or run: bpd weights import FILE --init {src.init}"
    )
    err.file_name, err.folder, err.url, err.init = src.file_name, folder, src.url, src.init
    return err


def _download(src: WeightsSource, weights_dir) -> None:
    folder = src.folder(weights_dir)
    folder.mkdir(parents=True, exist_ok=True)
    # Library progress output goes to stderr so stdout stays machine-readable.
    with contextlib.redirect_stdout(sys.stderr):
        if src.init == "xrv":
            _import_xrv().models.get_weights(XRV_WEIGHTS, cache_dir=str(folder))
        else:
            torch.hub.download_url_to_file(
                src.url, str(src.path(weights_dir)), hash_prefix=src.sha256_prefix
            )


def library_cache_path(src: WeightsSource) -> Path:
    """Where torchxrayvision / torchvision keep this file by default (~/.torchxrayvision,
    $TORCH_HOME/hub/checkpoints): sites that used those libraries may have it already."""
    if src.init == "xrv":
        return Path(_import_xrv().utils.get_cache_dir()) / src.file_name
    return Path(torch.hub.get_dir()) / "checkpoints" / src.file_name


def find_weights(init: str, weights_dir=None) -> Path | None:
    """The init's weights file on this machine (our cache first, then what came with the
    install, then the libraries' own caches), or None."""
    src = weights_source(init)
    shipped = [src.path(folder) for folder in paths.shipped_weights_dirs()]
    for path in (src.path(weights_dir), *shipped, library_cache_path(src)):
        if path.is_file():
            return path
    return None


def ensure_weights(init: str, weights_dir=None, allow_download: bool = True) -> Path:
    """Path of the init's weights file, downloading it when allowed and possible."""
    found = find_weights(init, weights_dir)
    if found is not None:
        return found
    src = weights_source(init)
    path = src.path(weights_dir)
    if not allow_download:
        raise _missing(src, weights_dir, "downloads are switched off")
    reason = _host_reachable(src.url)
    if reason is None:
        log.info("downloading %s weights from %s", init, src.url)
        try:
            _download(src, weights_dir)
        except (OSError, RuntimeError) as exc:  # requests/urllib errors are OSErrors
            reason = f"download failed: {exc}"
    if not path.is_file():
        raise _missing(src, weights_dir, reason or "download failed")
    return path


def _read_state_dict(file: Path) -> dict[str, torch.Tensor]:
    """Tensors only; anything else (a pickled model, a training checkpoint) is refused."""
    try:
        obj = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for pickled objects, others for non-torch files
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if found:
            raise InputError(
                f"the file holds pickled Python objects ({found.group(1)}, e.g. a whole saved "
                "model), which could run code when loaded and are refused. Save "
                "model.state_dict() with torch.save instead.",
                file=file,
            ) from None
        raise InputError(
            f"not a PyTorch weights file, or a damaged one ({type(exc).__name__})", file=file
        ) from None
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(
            "expected a state_dict (a mapping of parameter names to tensors); "
            f"found {type(obj).__name__}",
            file=file,
        )
    return obj


def check_state_dict(state: dict[str, torch.Tensor], init: str, file: Path) -> nn.Module:
    """Load `state` strictly into the init's architecture; InputError saying what differs."""
    model = build_resnet(init)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    for title, items in (("missing", missing), ("unexpected", unexpected), ("shape", wrong)):
        if items:
            more = f" and {len(items) - 5} more" if len(items) > 5 else ""
            problems.append(f"{title}: {', '.join(items[:5])}{more}")
    if problems:
        raise InputError(f"does not fit the '{init}' ResNet-50 ({'; '.join(problems)})", file=file)
    model.load_state_dict(state, strict=True)
    return model


def load_backbone(init: str, weights_dir=None, allow_download: bool = True) -> nn.Module:
    """The pretrained ResNet-50 for `init`, its own classifier replaced by Identity."""
    path = ensure_weights(init, weights_dir, allow_download)
    try:
        model = check_state_dict(_read_state_dict(path), init, path)
    except InputError as exc:
        raise WeightsMissingError(
            f"{exc}. Replace it: bpd weights import FILE --init {init}"
        ) from None
    model.fc = nn.Identity()
    return model


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def import_weights(file: str | Path, init: str, weights_dir=None) -> Path:
    """Check `file` loads strictly into the init's architecture, then copy it
    atomically to the exact path the loader looks for. Returns that path."""
    file = Path(file)
    if init not in PRETRAINED_INITS:
        raise InputError(f"--init must be one of {PRETRAINED_INITS}, not {init!r}")
    if not file.is_file():
        raise InputError("file not found", file=file)
    src = weights_source(init)
    check_state_dict(_read_state_dict(file), init, file)
    if src.sha256_prefix and not _sha256(file).startswith(src.sha256_prefix):
        log.warning(
            "%s is not the official %s file (sha256 does not start with %s); using it anyway",
            file,
            src.file_name,
            src.sha256_prefix,
        )
    dest = src.path(weights_dir)
    with open(file, "rb") as fin:
        atomic_write(dest, lambda fout: shutil.copyfileobj(fin, fout, 1 << 20))
    log.info("imported %s weights to %s", init, dest)
    return dest


def weights_status(weights_dir=None) -> list[dict]:
    """One entry per pretrained init: whether its file is present, and where."""
    out = []
    for init in PRETRAINED_INITS:
        src = weights_source(init)
        found = find_weights(init, weights_dir)
        out.append(
            {
                "init": init,
                "present": found is not None,
                "path": str(found or src.path(weights_dir)),
                "file_name": src.file_name,
                "url": src.url,
            }
        )
    return out
