"""`bpd predict` (new radiographs) and `bpd explain` (out-of-fold Grad-CAM of a run).

torch and the models load only inside the command functions: the parser stays fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict",
        help="probabilities for new radiographs from a run or an exported model",
        description="Applies the run's exact preprocessing. A run folder uses its final "
        "model if it has one, else the ensemble (mean probability) of its fold models. "
        "Research use only; not a medical device.",
    )
    p.add_argument("model", metavar="RUN_DIR|MODEL_DIR", help="run folder or exported model")
    p.add_argument("inputs", nargs="+", metavar="TABLE|IMAGE", help="one table or image files")
    p.add_argument("--out", required=True, help="CSV, one row per image (written atomically)")
    p.add_argument("--cam", metavar="DIR", help="also write Grad-CAM overlays (PNG) and maps "
                   "(.npy) here; for an ensemble the mean of the fold models' maps")  # fmt: skip
    p.add_argument("--opacity", type=float, default=0.4, help="heat map opacity (default 0.4)")
    p.add_argument("--images-root", help="folder a table's image paths are relative to")
    p.add_argument("--patient-col", help="patient id column (default: guessed)")
    p.add_argument("--image-col", help="image path column (default: guessed)")
    p.add_argument("--image-pattern", help="one row per patient: e.g. '{patient_id}_*.png'")
    p.add_argument("--outcome", help="outcome column, to also report metrics")
    p.add_argument("--positive", nargs="+", metavar="V", help="positive outcome values")
    p.add_argument("--negative", nargs="+", metavar="V", help="negative values (default: rest)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=run_predict)

    e = subparsers.add_parser(
        "explain",
        help="Grad-CAM of a run's patients by the fold model that did not train on them",
    )
    e.add_argument("run_dir", metavar="RUN_DIR")
    e.add_argument("--patients", nargs="+", metavar="ID", help="patient ids")
    e.add_argument("--all", action="store_true", help="every tested patient")
    e.add_argument("--repeat", type=int, default=0, help="which CV repeat's folds (default 0)")
    e.add_argument("--out", required=True, help="folder for overlays, maps and index.csv")
    e.add_argument("--opacity", type=float, default=0.4, help="heat map opacity (default 0.4)")
    e.set_defaults(func=run_explain)


def _check_opacity(value: float) -> None:
    from core.errors import InputError

    if not 0.0 <= value <= 1.0:
        raise InputError(f"--opacity must be between 0 and 1, got {value}")


def run_predict(args: argparse.Namespace) -> int:
    from core.errors import InputError
    from core.predict.inputs import read_inputs
    from core.predict.models import load_predictor
    from core.predict.predict import predict, write_results

    _check_opacity(args.opacity)
    if args.positive and not args.outcome:
        raise InputError("--positive needs --outcome (the column holding the outcome)")
    predictor = load_predictor(args.model)
    inputs = read_inputs(
        args.inputs,
        images_root=args.images_root,
        patient_col=args.patient_col,
        image_col=args.image_col,
        image_pattern=args.image_pattern,
        outcome_column=args.outcome,
        positive=args.positive,
        negative=args.negative,
        recorded=predictor.columns,
    )
    print(f"model: {predictor.description}; threshold {predictor.threshold:.3f}; "
          f"{len(inputs.images)} image(s)", file=sys.stderr)  # fmt: skip
    bar = None if args.quiet else _bar("predicting")
    result = predict(
        predictor,
        inputs,
        cam_dir=args.cam,
        opacity=args.opacity,
        on_progress=bar.update if bar else None,
    )
    if bar:
        bar.close()
    written = write_results(result, args.out)
    for kind, path in written.items():
        print(f"{kind}: {path}")
    if result.metrics:
        _print_metrics(result.metrics)
    return 0


def _bar(label: str):
    from core.cli.train_cmd import ProgressBar

    return ProgressBar(label)


def _print_metrics(m: dict[str, Any]) -> None:
    print(f"patients with an outcome: {m['n_patients']} (positive {m['n_positive']}), "
          f"threshold {m['threshold']:.3f}")  # fmt: skip
    for name in ("auroc", "balanced_accuracy", "f1", "sensitivity", "specificity"):
        v = m.get(name)
        print(f"{name:>18}: {'undefined' if v is None else f'{v:.3f}'}")


def run_explain(args: argparse.Namespace) -> int:
    from core.errors import InputError
    from core.explain.gradcam import overlay_png, save_cam_npy
    from core.explain.oof import RunExplainer, explain_patient
    from core.runs.folder import write_csv

    _check_opacity(args.opacity)
    if bool(args.patients) == bool(args.all):
        raise InputError("give --patients ID ... or --all")
    ex = RunExplainer.open(args.run_dir)
    if args.all:
        ids = [p for f in ex.folds.values() if int(f["repeat"]) == args.repeat
               for p in f["test_patients"]]  # fmt: skip
        ids.sort(key=lambda pid: ex.fold_of(pid, args.repeat))  # one fold model at a time
    else:
        ids = list(args.patients)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    bar = _bar("explaining")
    for i, pid in enumerate(ids):
        cam, gray, prob, fold_id = explain_patient(ex, pid, repeat=args.repeat)
        stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in pid)
        png = overlay_png(gray, cam, out / f"{stem}_cam.png", opacity=args.opacity)
        npy = save_cam_npy(cam, out / f"{stem}_cam.npy")
        rows.append(
            {
                "patient_id": pid,
                "label": ex.label(fold_id, pid),
                "oof_prob": ex.fold_prob(fold_id, pid),
                "model_prob": prob,
                "fold_id": fold_id,
                "png": png.name,
                "npy": npy.name,
            }
        )
        bar.update(i + 1, len(ids))
    bar.close()
    fields = ("patient_id", "label", "oof_prob", "model_prob", "fold_id", "png", "npy")
    write_csv(out / "index.csv", rows, fields)
    print(f"{len(rows)} explanation(s) in {out} (index.csv)")
    return 0
