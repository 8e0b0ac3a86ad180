"""One tiny real run (12 demo patients, 32 px, 2 folds, random init) shared by the
Review and Predict tests of a session: trained once through the real `bpd train`."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_RUN: Path | None = None


def tiny_run() -> Path:
    global _RUN
    if _RUN is None:
        from tests.core.test_final_model import train_tiny

        tmp = Path(tempfile.mkdtemp(prefix="bpd-review-run-"))
        home = os.environ.get("BPD_STUDIO_HOME")
        os.environ["BPD_STUDIO_HOME"] = str(tmp / "home")
        try:
            # 64 px: layer4 then has 2 x 2 cells; at 32 px it has one and every map is flat
            _RUN = train_tiny(tmp, "--no-report", "--resolution", "64")
        finally:
            if home is None:
                os.environ.pop("BPD_STUDIO_HOME", None)
            else:
                os.environ["BPD_STUDIO_HOME"] = home
    return _RUN
