"""One tiny real run shared by the Review and Predict tests of a session, trained once
through the real `bpd train`: 12 demo patients (6 per outcome, two of them with several
radiographs), 64 px, 2 folds, random init."""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path

from core import paths

_RUN: Path | None = None
SEVERAL_IMAGES = ("N-0453", "P0253")  # demo patients with more than one radiograph


def _table(folder: Path) -> Path:
    with open(paths.demo_cohort_table(), encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    keep: list[str] = list(SEVERAL_IMAGES)
    for outcome in ("NORMAL", "PNEUMONIA"):
        for r in rows:
            pid = r["patient_id"]
            same_outcome = sum(k[0] == pid[0] for k in keep)  # ids start with N or P
            if r["diagnosis"] == outcome and pid not in keep and same_outcome < 6:
                keep.append(pid)
    table = folder / "tiny.csv"
    with open(table, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(r for r in rows if r["patient_id"] in keep)
    return table


def tiny_run() -> Path:
    global _RUN
    if _RUN is None:
        from core.cli.main import main
        from tests.core.test_final_model import TINY_TRAIN

        tmp = Path(tempfile.mkdtemp(prefix="bpd-review-run-"))
        home = os.environ.get("BPD_STUDIO_HOME")
        os.environ["BPD_STUDIO_HOME"] = str(tmp / "home")
        try:
            # 64 px: layer4 then has 2 x 2 cells; at 32 px it has one and every map is flat
            args = ["train", str(_table(tmp)), "--images-root",
                    str(paths.demo_cohort_table().parent), "--outcome", "diagnosis",
                    "--positive", "PNEUMONIA", "--negative", "NORMAL", *TINY_TRAIN,
                    "--resolution", "64", "--no-report", "--out", str(tmp / "run")]  # fmt: skip
            assert main(args) == 0
            _RUN = tmp / "run"
        finally:
            if home is None:
                os.environ.pop("BPD_STUDIO_HOME", None)
            else:
                os.environ["BPD_STUDIO_HOME"] = home
    return _RUN
