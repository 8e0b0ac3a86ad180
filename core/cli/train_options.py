"""Run options of `bpd train`/`bpd demo` beyond the recipe: column mapping, final model,
report. Kept in config.json so `bpd resume` repeats them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def options(args: argparse.Namespace) -> dict[str, bool]:
    """Run options beyond the recipe; kept in config.json so `bpd resume` repeats them."""
    return {"final_model": bool(args.final_model), "report": not args.no_report}


def mapping_json(args: argparse.Namespace) -> dict[str, Any] | None:
    """The user's column choices (the rest guessed as `bpd cohort check` does)."""
    if not (args.patient_col or args.image_col or args.image_pattern):
        return None
    from core.cohort.mapping import ColumnMapping, guess_mapping
    from core.cohort.table import read_table

    guessed = guess_mapping(read_table(args.table).columns)
    image = None if args.image_pattern and not args.image_col else (args.image_col or guessed.image)
    mapping = ColumnMapping(
        patient_id=args.patient_col or guessed.patient_id,
        image=image,
        outcome=args.outcome,
        gestational_age=guessed.gestational_age,
        birth_weight=guessed.birth_weight,
        irds=guessed.irds,
        sex=guessed.sex,
    )
    return mapping.to_json()


def write_report(run_dir: Path) -> None:
    """report.html beside the results; a failed report never fails the finished run."""
    from core.evaluation.report import write_report as render

    try:
        path = render(run_dir)
    except Exception as exc:  # the run is done and on disk; say why the report is missing
        print(f"warning: report.html could not be written: {exc}", file=sys.stderr)
        return
    print(f"report: {path}")
