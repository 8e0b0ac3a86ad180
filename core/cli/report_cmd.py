"""`bpd report RUN_DIR [--html FILE]` and `bpd compare RUN_A RUN_B [--json]`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write a self-contained HTML report of a run",
        description="Write one HTML file (plots embedded) describing a run: metrics, ROC "
        "with bootstrap CI, calibration, confusion matrix, baselines, per-infant table.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--html", metavar="FILE", help="output file (default RUN_DIR/report.html)")
    p.add_argument("--force", action="store_true", help="replace FILE if it already exists")
    p.set_defaults(func=_report)

    c = sub.add_parser(
        "compare",
        help="paired tests between two runs on the same patients and folds",
        description="Exact Wilcoxon signed-rank tests on paired repeat-level and fold "
        "AUROCs, and DeLong's test on the pooled out-of-fold predictions.",
    )
    c.add_argument("run_a", metavar="RUN_A")
    c.add_argument("run_b", metavar="RUN_B")
    c.add_argument("--json", action="store_true", help="print the result as JSON")
    c.set_defaults(func=_compare)


def _report(args: argparse.Namespace) -> int:
    from core.evaluation.report import write_report
    from core.runs.folder import RunFolder

    html = _report_target(args.run_dir, args.html, args.force) if args.html else None
    run = RunFolder.existing(args.run_dir)
    if run.is_federated():  # per-site results, no folds of its own (core.federated.report)
        from core.federated.report import write_federated_report as write_report
    print(write_report(args.run_dir, html))
    return 0


def _report_target(run_dir: str, html: str, force: bool) -> Path:
    """--html FILE: never the run's cohort table or another file of the run (the report
    reads them), never an existing file without --force; RUN_DIR's own report.html is
    the report's to replace."""
    from core.outputs import check_output_file, same_file
    from core.runs.folder import RunFolder

    run = RunFolder.existing(run_dir)
    if same_file(html, run.report_path):
        return Path(html)
    config = run.config()
    sources = [run.cohort_source(config)]
    sources += [s.get("cohort_source") or {} for s in config.get("federated", {}).get("sites", [])]
    tables = [s["table"] for s in sources if s.get("table")]  # a federation's: every site's
    return check_output_file(html, inputs=tables, input_dirs=[run.path], force=force, flag="--html")


def _compare(args: argparse.Namespace) -> int:
    from core.evaluation.compare import compare_runs, format_comparison

    result = compare_runs(args.run_a, args.run_b)
    print(json.dumps(result, indent=2) if args.json else format_comparison(result))
    return 0
