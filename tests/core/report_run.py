"""A real run with its out-of-fold Grad-CAM cache, shared by the report tests of a
session: the tiny Review run (tests/gui/review_run.py, trained once through `bpd train`)
copied and explained once with `bpd explain RUN --all`."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

_EXPLAINED: Path | None = None


def explained_run(target: Path) -> Path:
    """A copy of the explained tiny run at `target` (the report is written into it)."""
    global _EXPLAINED
    if _EXPLAINED is None:
        from core.cli.main import main
        from tests.gui.review_run import tiny_run

        run = Path(tempfile.mkdtemp(prefix="bpd-report-run-")) / "run"
        shutil.copytree(tiny_run(), run)
        assert main(["explain", str(run), "--all"]) == 0
        _EXPLAINED = run
    return Path(shutil.copytree(_EXPLAINED, target))
