"""`bpd predict` (new radiographs) and `bpd explain` (out-of-fold Grad-CAM of a run).

torch and the models load only inside the command functions: the parser stays fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

# Some rows or images could not be predicted; the others were (README, `bpd predict -h`).
PARTIAL_EXIT = 3


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict",
        help="probabilities for new radiographs from a run or an exported model",
        description="Applies the run's exact preprocessing. A run folder uses its final "
        "model if it has one, else the ensemble (mean probability) of its fold models. "
        "Research use only; not a medical device.",
        epilog=f"Exit status: 0 every row predicted; {PARTIAL_EXIT} partial: some rows or "
        "images could not be used (missing, unreadable, outside the images root); the "
        "others were predicted, and each problem row is listed on screen and in the output "
        "with an empty prob and its `problem`; 2 bad input, nothing written.",
    )
    p.add_argument("model", metavar="RUN_DIR|MODEL_DIR", help="run folder or exported model")
    p.add_argument("inputs", nargs="*", metavar="TABLE|IMAGE", help="one table or image files")
    p.add_argument("--out", help="CSV, one row per image (written atomically); required "
                   "unless --serve")  # fmt: skip
    p.add_argument("--serve", action="store_true",
                   help="keep the model(s) loaded and predict one request per line on "
                   "stdin (JSON: inputs, out and the options below by name), answering "
                   "in JSON lines on stdout; ends at the end of stdin (the app's Predict "
                   "page). See core/cli/predict_serve.py")  # fmt: skip
    p.add_argument("--cam", metavar="DIR", help="also write Grad-CAM overlays (PNG) and maps "
                   "(.npy) here; for an ensemble the mean of the fold models' maps")  # fmt: skip
    p.add_argument("--opacity", type=float, default=0.4, help="heat map opacity (default 0.4)")
    p.add_argument(
        "--cam-scale",
        choices=("shared", "image"),
        default="shared",
        help="shared (default): one colour scale for all images of this prediction, "
        "so colours compare; image: each map scaled to its own maximum",
    )
    p.add_argument("--images-root", help="folder a table's image paths are relative to")
    p.add_argument("--patient-col", help="patient id column (default: guessed)")
    p.add_argument("--image-col", help="image path column (default: guessed)")
    p.add_argument("--image-pattern", help="one row per patient: e.g. '{patient_id}_*.png'")
    p.add_argument("--outcome", help="outcome column, to also report metrics")
    p.add_argument("--positive", nargs="+", metavar="V", help="positive outcome values")
    p.add_argument("--negative", nargs="+", metavar="V",
                   help="negative values; a value named in neither list gets no label")  # fmt: skip
    p.add_argument("--negative-rest", action="store_true",
                   help="count every recorded value not named positive as negative")  # fmt: skip
    p.add_argument("--sheet", help="XLSX: the sheet to read, by name or position (1 = first)")
    p.add_argument("--crops", metavar="FILE", help="crop boxes of these images (a "
                   "<table>.crops.csv sidecar, docs/method.md 'Crops'); images without one "
                   "use the box the run trained them with, if any")  # fmt: skip
    p.add_argument("--autobox", action="store_true",
                   help="cut each image that has no box to the automatic chest box (the "
                   "method of `bpd cohort autobox`, found now); only for a model trained "
                   "on crop boxes, and consistent only with one trained on automatic "
                   "boxes (docs/method.md, 'Crops')")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--force", action="store_true",
                   help="replace output files that already exist (never an input)")  # fmt: skip
    p.set_defaults(func=run_predict)

    e = subparsers.add_parser(
        "explain",
        help="Grad-CAM of a run's patients by the fold model that did not train on them",
    )
    e.add_argument("run_dir", metavar="RUN_DIR")
    e.add_argument("--patients", nargs="+", metavar="ID", help="patient ids")
    e.add_argument("--all", action="store_true", help="every tested patient")
    e.add_argument("--repeat", type=int, default=0, help="which CV repeat's folds (default 0)")
    e.add_argument(
        "--out",
        help="folder for overlays, maps and index.csv "
        "(default: RUN_DIR/explanations, which the app's Review page reads)",
    )
    e.add_argument("--opacity", type=float, default=0.4, help="heat map opacity (default 0.4)")
    e.add_argument("--force", action="store_true",
                   help="write into an --out folder that already holds files")  # fmt: skip
    e.add_argument(
        "--cam-scale",
        choices=("shared", "image"),
        default="shared",
        help="shared (default): one colour scale for every explained infant, so "
        "colours compare; image: each map scaled to its own maximum",
    )
    e.set_defaults(func=run_explain)


def _check_opacity(value: float) -> None:
    from core.errors import InputError

    if not 0.0 <= value <= 1.0:
        raise InputError(f"--opacity must be between 0 and 1, got {value}")


def run_predict(args: argparse.Namespace) -> int:
    from core.predict.models import load_predictor

    if args.serve:
        from core.cli.predict_serve import serve

        return serve(args)
    check_request(args)
    predictor = load_predictor(args.model)
    bar = None if args.quiet else _bar("predicting")
    result, written = predict_request(args, predictor, on_progress=bar.update if bar else None)
    if bar:
        bar.close()
    for kind, path in written.items():
        print(f"{kind}: {path}")
    if result.metrics:
        _print_metrics(result.metrics)
    if result.partial:
        _print_problems(result.problems, written["images"])
        return PARTIAL_EXIT
    return 0


def check_request(args: argparse.Namespace) -> None:
    """What can be refused before any model loads: options, and an output file that is
    an input or exists (without --force)."""
    from core.errors import InputError
    from core.outputs import check_output_file

    _check_opacity(args.opacity)
    if not args.inputs:
        raise InputError("give a table or at least one image file")
    if not args.out:
        raise InputError("--out FILE is required: the CSV to write, one row per image")
    if args.positive and not args.outcome:
        raise InputError("--positive needs --outcome (the column holding the outcome)")
    # before anything slow: never over an input, never over a file without --force
    check_output_file(args.out, inputs=args.inputs, input_dirs=[args.model], force=args.force)


def predict_request(args: argparse.Namespace, predictor, on_progress=None):
    """Read the inputs, check every output path, predict and write the files: one `bpd
    predict` (or one --serve request) with `predictor` already loaded. Returns
    (PredictionResult, {kind: path written})."""
    from core.predict.inputs import is_table, read_inputs
    from core.predict.predict import predict, write_results

    # a table's reading options only for a table: they pull in pandas, images need none
    reading = _table_reading(args) if len(args.inputs) == 1 and is_table(args.inputs[0]) else None
    inputs = read_inputs(args.inputs, reading, recorded=predictor.columns)
    _check_outputs(args, inputs)
    print(f"model: {predictor.description}; threshold {predictor.threshold:.3f}; "
          f"{len(inputs.images)} image(s)", file=sys.stderr)  # fmt: skip
    autobox = bool(getattr(args, "autobox", False))
    _say_autobox(predictor, autobox)
    result = predict(
        predictor,
        inputs,
        cam_dir=args.cam,
        opacity=args.opacity,
        cam_scale=args.cam_scale,
        on_progress=on_progress,
        crops=_crops(args),
        autobox=autobox,
    )
    _warn_uncropped(predictor, result)
    return result, write_results(result, args.out)


def _crops(args: argparse.Namespace):
    from core.cohort.crops import read_sidecar

    return read_sidecar(args.crops) if args.crops else None


def _warn_uncropped(predictor, result) -> None:
    """A model trained on crop boxes sees an image without one whole: a different picture
    from the ones it learnt on. Said once here and in each such image's `crop` cell, not
    refused (the probability is still computed)."""
    from core.predict.crop_choice import crop_warning

    warning = crop_warning(predictor.crop_policy, result.images)
    if warning:
        print(warning, file=sys.stderr)


def _say_autobox(predictor, autobox: bool) -> None:
    """--autobox on a model whose boxes were made another way: said before predicting."""
    from core.predict.crop_choice import autobox_caveat

    caveat = autobox_caveat(predictor.crop_policy) if autobox else None
    if caveat:
        print(f"warning: {caveat}", file=sys.stderr)


def _check_outputs(args: argparse.Namespace, inputs) -> None:
    """Every file predict will write: not an input (the table, an image, the model
    folder), not an existing file unless --force."""
    from core.outputs import check_output_dir, check_output_file, refuse_existing
    from core.predict.predict import cam_paths, output_paths

    sources = [*args.inputs, *(i.path for i in inputs.images)]
    for path in output_paths(args.out, inputs, bool(args.outcome)).values():
        check_output_file(path, inputs=sources, input_dirs=[args.model], force=args.force)
    if args.cam:
        check_output_dir(args.cam, flag="--cam")
        planned = [p for pair in cam_paths(inputs, args.cam) for p in pair]
        refuse_existing(planned, force=args.force, flag="--cam")


def _print_problems(problems, out: Path) -> None:
    print(f"partial result: {len(problems)} row(s) or image(s) could not be predicted "
          f"(listed in {out} with an empty prob):", file=sys.stderr)  # fmt: skip
    for p in problems:
        row = f"row {p.row}" if p.row is not None else ""
        who = f"patient {p.patient_id}" if p.patient_id else ""
        where = ", ".join(x for x in (row, who, p.file) if x)
        print(f"  {where}: {p.message}", file=sys.stderr)


def _table_reading(args: argparse.Namespace):
    """How a prediction table is read (core.cohort.source.CohortSource; the table itself
    is the one among the inputs)."""
    from core.cohort.source import CohortSource, OutcomeSpec

    outcome = None
    if args.outcome:
        outcome = OutcomeSpec(args.outcome, tuple(args.positive or ()),
                              tuple(args.negative or ()), bool(args.negative_rest))  # fmt: skip
    return CohortSource(
        str(args.inputs[0]) if args.inputs else "",
        outcome,
        images_root=args.images_root,
        patient_column=args.patient_col,
        image_column=args.image_col,
        image_pattern=args.image_pattern,
        sheet=args.sheet,
    )


def _bar(label: str):
    from core.cli.train_cmd import ProgressBar

    return ProgressBar(label)


def _print_metrics(m: dict[str, Any]) -> None:
    print(f"patients with an outcome: {m['n_patients']} (positive {m['n_positive']}), "
          f"threshold {m['threshold']:.3f}")  # fmt: skip
    for name in ("auroc", "balanced_accuracy", "f1", "sensitivity", "specificity"):
        v = m.get(name)
        print(f"{name:>18}: {'undefined' if v is None else f'{v:.3f}'}")
    if m.get("caveat"):
        print(f"caveat: {m['caveat']}")


def run_explain(args: argparse.Namespace) -> int:
    from core.errors import InputError
    from core.explain.batch import explain_run
    from core.runs.folder import RunFolder

    _check_opacity(args.opacity)
    if bool(args.patients) == bool(args.all):
        raise InputError("give --patients ID ... or --all")
    # existing(), not open(): open()'s clean-up would delete a running trainer's temp files
    out = Path(args.out) if args.out else RunFolder.existing(args.run_dir).explanations_dir
    if args.out:  # the run's explanations/ is explain's own cache; any other folder is not
        from core.outputs import check_output_dir, refuse_existing

        check_output_dir(args.out)
        refuse_existing(sorted(out.iterdir()) if out.is_dir() else [], force=args.force)
    bar = _bar("explaining")
    rows = explain_run(args.run_dir, out, patients=args.patients, repeat=args.repeat,
                       scaling=args.cam_scale, opacity=args.opacity,
                       on_progress=bar.update)  # fmt: skip
    bar.close()
    empty = sum(int(r["empty"]) for r in rows)
    print(f"{len(rows)} explanation(s) in {out} (index.csv); {empty} all-zero map(s); "
          f"{args.cam_scale} scaling")  # fmt: skip
    return 0
