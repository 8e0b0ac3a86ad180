"""Where BPD Studio keeps its data on this machine.

Everything lives under one folder so a site can back it up or wipe it in one place:
``$BPD_STUDIO_HOME`` if set, else ``~/.bpd-studio``.
"""

from __future__ import annotations

import os
from pathlib import Path


def studio_home() -> Path:
    return Path(os.environ.get("BPD_STUDIO_HOME", Path.home() / ".bpd-studio")).expanduser()


def cache_dir() -> Path:
    """Preprocessed-image cache (keyed by file content + settings)."""
    return studio_home() / "cache"


def weights_dir() -> Path:
    """Pretrained weights (torchxrayvision cache_dir and torchvision files)."""
    return studio_home() / "weights"


def shipped_weights_dirs() -> list[Path]:
    """Read-only weights that came with this install, searched after weights_dir():
    resources/weights (a bundle built with WEIGHTS=..., docs/packaging.md) and, in a
    bundle, a weights folder beside its executable that a site's IT filled for all users."""
    import sys

    dirs = [resources_dir() / "weights"]
    if getattr(sys, "frozen", False):
        dirs.append(Path(sys.executable).resolve().parent / "weights")
    return dirs


def runs_dir() -> Path:
    """Default parent of run folders."""
    return studio_home() / "runs"


def resources_dir() -> Path:
    """Shipped resources (demo cohort, icons); also inside a PyInstaller bundle."""
    import sys

    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        return Path(frozen_root) / "resources"
    return Path(__file__).resolve().parent.parent / "resources"


def demo_cohort_table() -> Path:
    return resources_dir() / "demo_cohort" / "cohort.csv"
