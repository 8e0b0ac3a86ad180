"""`bpd cohort check TABLE`: read, validate and decode a cohort; say what is wrong.

Exit 0 when the cohort is usable (both outcomes present), 2 when it is not or the
table cannot be read. Row numbers are data rows (1 = first row under the header).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from core.cohort.source import CohortSource, OutcomeSpec

if TYPE_CHECKING:
    from core.cohort.model import Cohort


def register(subparsers: argparse._SubParsersAction) -> None:
    cohort = subparsers.add_parser("cohort", help="import and validate a cohort table")
    sub = cohort.add_subparsers(dest="cohort_command", metavar="ACTION", required=True)
    check = sub.add_parser(
        "check",
        help="validate a table and its images; print the summary and every problem",
        description="Rows are data rows: 1 is the first row under the header.",
    )
    check.add_argument("table", help="CSV or XLSX, one row per image or per patient")
    check.add_argument(
        "--images-root", help="folder image paths are relative to (default: the table's)"
    )
    check.add_argument("--outcome", help="outcome column (default: guessed from the header)")
    check.add_argument(
        "--positive", nargs="+", metavar="V", help="values meaning positive (e.g. moderate severe)"
    )
    check.add_argument(
        "--negative",
        nargs="+",
        metavar="V",
        help="values meaning negative; a recorded value named neither positive nor negative "
        "excludes its patient (with the reason)",
    )
    check.add_argument(
        "--negative-rest",
        action="store_true",
        help="count every recorded value not named positive as negative",
    )
    check.add_argument("--sheet", help="XLSX: the sheet to read, by name or position (1 = first)")
    check.add_argument("--patient-col", help="patient id column (default: guessed)")
    check.add_argument("--image-col", help="image path column (default: guessed)")
    check.add_argument(
        "--image-pattern",
        help="one row per patient: each patient's files, e.g. '{patient_id}_*.png' "
        "or '{patient_id}/*'",
    )
    check.add_argument(
        "--resolution", type=int, default=224, help="decode check resolution (default 224)"
    )
    check.add_argument(
        "--no-decode", action="store_true", help="check the table only, do not read images"
    )
    check.add_argument(
        "--workers", type=int, default=None, help="decoding processes (default: all CPUs)"
    )
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    check.set_defaults(func=run_check)  # fmt: skip
    _register_autobox(sub)
    _register_deskew(sub)


def _add_sidecar_arguments(p: argparse.ArgumentParser) -> None:
    """A cohort's table, how its images are found, and the crop sidecar to update:
    autobox and deskew read a cohort alike."""
    p.add_argument("table", help="CSV or XLSX, one row per image or per patient")
    p.add_argument("--images-root", help="folder image paths are relative to")
    p.add_argument("--sheet", help="XLSX: the sheet to read")
    p.add_argument("--patient-col", help="patient id column (default: guessed)")
    p.add_argument("--image-col", help="image path column (default: guessed)")
    p.add_argument("--image-pattern", help="one row per patient: e.g. '{patient_id}_*.png'")
    p.add_argument("--out", help="the sidecar to write (default: TABLE.crops.csv)")


def _sidecar_source(args: argparse.Namespace) -> CohortSource:
    return CohortSource(args.table, images_root=args.images_root,
                        patient_column=args.patient_col, image_column=args.image_col,
                        image_pattern=args.image_pattern, sheet=args.sheet)  # fmt: skip


def _open_sidecar(args: argparse.Namespace, also_read: Sequence[str] = ()):
    """(the sidecar to write, what it holds now): it is updated in place, a person's
    boxes kept, and is never the table or another input."""
    from pathlib import Path

    from core.cohort.crops import CropTable, read_sidecar, sidecar_path
    from core.outputs import check_output_file

    out = Path(args.out) if args.out else sidecar_path(args.table)
    check_output_file(out, inputs=[args.table, *also_read], force=True)
    return out, read_sidecar(out) if out.exists() else CropTable()


def _register_autobox(sub: argparse._SubParsersAction) -> None:
    box = sub.add_parser(
        "autobox",
        help="suggest a chest crop box for every image (offline, no model); written for "
        "review, never used unreviewed",
        description="Writes TABLE.crops.csv (or --out) with source=auto for every image a "
        "person has not boxed; boxes marked manual or accepted are kept. Automatic boxes "
        "are used by training and prediction only once a person accepts them: correct or "
        "accept each in the app's crop tool, or accept all of them as they are with "
        "--accept. See docs/method.md, 'Crops'.",
    )
    _add_sidecar_arguments(box)
    box.add_argument("--accept", action="store_true",
                     help="mark every automatic box accepted (used by training) without "
                     "review; a person's boxes are kept")  # fmt: skip
    box.add_argument("--compare", metavar="FILE",
                     help="a sidecar of boxes drawn by hand: print the IoU of the automatic "
                     "boxes against them")  # fmt: skip
    box.set_defaults(func=run_autobox)


def run_autobox(args: argparse.Namespace) -> int:
    """Suggest, keep what a person drew, write the sidecar, and say what to do next."""
    from core.cohort.chest_box import autobox_images, compare_boxes, table_images
    from core.cohort.crops import read_sidecar, write_sidecar

    out, existing = _open_sidecar(args, [args.compare] if args.compare else [])
    images = table_images(_sidecar_source(args))
    result = autobox_images(images, existing, on_progress=_progress)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    table = result.table.accepted() if args.accept else result.table
    write_sidecar(out, table)
    print(f"images:      {len(images)}")
    print(f"suggested:   {result.suggested} automatic box(es)"
          + (" (accepted: used by training)" if args.accept else " (source=auto)"))  # fmt: skip
    print(f"kept:        {result.kept} box(es) a person drew or accepted")
    for ref in result.not_found:
        print(f"  no lung fields found, box = the body's width, full height: {ref}")
    for problem in result.problems:
        print(f"  [error] {problem}")
    print(f"written:     {out}")
    if not args.accept:
        print("next:        review the boxes in the app's crop tool (Cohort page), or accept "
              "them unreviewed with --accept; until then training ignores them")  # fmt: skip
    if args.compare:
        _print_comparison(compare_boxes(table, read_sidecar(args.compare)), args.compare)
    return 2 if result.problems else 0


def _register_deskew(sub: argparse._SubParsersAction) -> None:
    skew = sub.add_parser(
        "deskew",
        help="find radiographs photographed from a monitor or light box (a four-sided "
        "border seen in perspective); written as suggestions, never used unreviewed",
        description="Writes TABLE.crops.csv (or --out): for every image whose border is "
        "found, the border's corners (a deskew quad) with source=auto, printing per image "
        "found or not found. Nothing changes the pixels until a person accepts the border "
        "in the app's crop tool (D shows it). Images a person has boxed are kept. See "
        "docs/method.md, 'Deskew'.",
    )
    _add_sidecar_arguments(skew)
    skew.set_defaults(func=run_deskew)


def run_deskew(args: argparse.Namespace) -> int:
    """Detect, keep what a person drew, write the suggestions, say per image what was found."""
    from core.cohort.chest_box import table_images
    from core.cohort.crops import write_sidecar
    from core.cohort.deskew import deskew_images

    out, existing = _open_sidecar(args)
    images = table_images(_sidecar_source(args))
    result = deskew_images(images, existing, on_progress=_progress)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    found = dict(result.found)
    for ref, _ in images:
        if ref in found:
            q = found[ref].quad
            corners = ", ".join(f"({q[i]:.0f}, {q[i + 1]:.0f})" for i in range(0, 8, 2))
            print(f"  found      {ref}: confidence {found[ref].confidence:.2f}, corners {corners}")
        elif ref in result.not_found:
            print(f"  not found  {ref}")
        elif ref in result.kept:
            print(f"  kept       {ref}: a box a person drew or accepted")
    for problem in result.problems:
        print(f"  [error] {problem}")
    print(f"images:      {len(images)}")
    print(f"found:       {len(result.found)} border(s), written as suggestions (source=auto)")
    print(f"not found:   {len(result.not_found)}")
    print(f"kept:        {len(result.kept)} image(s) a person had boxed (not searched)")
    if result.found:
        write_sidecar(out, result.table)
        print(f"written:     {out}")
        print("next:        review each border in the app's crop tool (Cohort page): A keeps "
              "it, X discards it; until then nothing is deskewed")  # fmt: skip
    else:
        print(f"written:     nothing ({out} left as it was)")
    return 2 if result.problems else 0


def _print_comparison(pairs: list[tuple[str, float]], reference: str) -> None:
    import numpy as np

    if not pairs:
        print(f"compare:     no image of {reference} has an automatic box")
        return
    ious = np.array([v for _, v in pairs])
    print(f"IoU against {reference} ({len(ious)} images): mean {ious.mean():.3f}, "
          f"median {np.median(ious):.3f}, min {ious.min():.3f}, "
          f">= 0.5: {(ious >= 0.5).sum()}, >= 0.7: {(ious >= 0.7).sum()}")  # fmt: skip


def _source(args: argparse.Namespace) -> CohortSource:
    """The flags as a CohortSource, read by the same loader as training (columns not
    named are guessed from the header; no --outcome: the outcome column is guessed)."""
    outcome = None
    if args.outcome or args.positive or args.negative or args.negative_rest:
        outcome = OutcomeSpec(args.outcome or "", tuple(args.positive or ()),
                              tuple(args.negative or ()), bool(args.negative_rest))  # fmt: skip
    return CohortSource(
        args.table,
        outcome,
        images_root=args.images_root,
        patient_column=args.patient_col,
        image_column=args.image_col,
        image_pattern=args.image_pattern,
        sheet=args.sheet,
    )


def run_check(args: argparse.Namespace) -> int:
    # here, not at module level: every bpd command builds this parser, and the table
    # reader (pandas) and image cache cost a cold `bpd predict` ~0.4 s
    from core.cohort.cache import ImageCache
    from core.cohort.loader import load_source
    from core.cohort.prepare import prepare_images
    from core.cohort.preprocess import PreprocessConfig

    cohort = load_source(_source(args))
    seconds = 0.0
    if not args.no_decode:
        start = time.perf_counter()
        prepared = prepare_images(
            cohort,
            PreprocessConfig(resolution=args.resolution),
            ImageCache(),
            on_progress=None if args.json else _progress,
            workers=args.workers,
        )
        seconds = time.perf_counter() - start
        if not args.json and sys.stderr.isatty():
            print(file=sys.stderr)
        cohort = prepared.cohort
    if args.json:
        print(json.dumps(cohort.to_json(), indent=2, default=str))
    else:
        print_report(cohort, seconds)
    return 0 if cohort.is_usable() else 2


def _progress(done: int, total: int) -> None:
    if not sys.stderr.isatty():
        return
    print(f"\rreading images {done}/{total}", end="", file=sys.stderr, flush=True)


def _clinical_counts(cohort: Cohort) -> str:
    """How many kept patients have each clinical value (counts only)."""
    names = {
        "gestational_age_weeks": "gestational age",
        "birth_weight_g": "birth weight",
        "irds_grade": "IRDS",
        "sex": "sex",
    }
    n = cohort.n_patients
    parts = []
    for field, title in names.items():
        have = sum(getattr(p.clinical, field) is not None for p in cohort.patients)
        if have:
            parts.append(f"{title} {have}/{n}")
    return ", ".join(parts)


def print_report(cohort: Cohort, seconds: float = 0.0) -> None:
    s = cohort.summary()
    print(f"table:      {cohort.table_path}")
    if cohort.sheet is not None:
        print(f"sheet:      {cohort.sheet}")
    print(f"images in:  {cohort.images_root}")
    negatives = ", ".join(s["negative_values"]) or "(none named)"
    rest = " (every other recorded value: --negative-rest)" if s["negative_rest"] else ""
    print(f"outcome:    {s['outcome_column']}  positive = {', '.join(s['positive_values'])}"
          f"  negative = {negatives}{rest}")  # fmt: skip
    print(
        f"patients:   {s['n_patients']} ({s['n_positive']} positive / {s['n_negative']} negative)"
    )
    print(f"images:     {s['n_images']}" + (f"  (read in {seconds:.1f} s)" if seconds else ""))
    clinical = _clinical_counts(cohort)
    if clinical:
        print(f"clinical:   {clinical}")
    print(f"excluded:   {s['n_excluded']} patients")
    for reason, n in sorted(s["excluded_by_reason"].items()):
        print(f"  {reason}: {n}")
    for ex in cohort.exclusions:
        print(f"  - patient {ex.patient_id} (data row {ex.row}): {ex.reason}: {ex.message}")
    if cohort.problems:
        print(f"problems:   {len(cohort.errors)} errors, {len(cohort.warnings)} warnings")
        for p in cohort.problems:
            print(f"  [{p.severity}] {p.reason}: {p.message}")
            if p.file:
                print(f"      file: {p.file}")
    if cohort.is_usable():
        print("usable:     yes")
    else:
        print("usable:     NO - need at least 2 patients with each outcome")
        unmapped = s["excluded_by_reason"].get("unknown_outcome")
        if unmapped:
            print(f"            {unmapped} patients have an outcome value named neither "
                  f"positive nor negative: {_negative_rest_hint()}")  # fmt: skip


def _negative_rest_hint() -> str:
    from core.cohort.outcome_values import NEGATIVE_REST_HINT  # pandas: see run_check

    return NEGATIVE_REST_HINT
