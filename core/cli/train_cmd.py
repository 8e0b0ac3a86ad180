"""`bpd train`, `bpd resume`, `bpd demo`: cross-validated fine-tuning as a resumable run.

Progress and ETA go to stderr; the run folder and the summary to stdout. Ctrl-C or
SIGTERM stops after the current batch (exit 130) and leaves the run resumable.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import paths
from core.cli.train_options import mapping_json as _mapping_json
from core.cli.train_options import options as _options
from core.cli.train_options import write_report as _write_report
from core.errors import InputError
from core.evaluation.metrics import METRIC_NAMES
from core.training.config import INITS, PRESETS, STRATEGIES, TrainConfig, preset

if TYPE_CHECKING:  # torch loads only when a training command runs
    from core.training.runtime import CancelToken


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("train", help="cross-validated fine-tuning on a cohort table")
    train.add_argument("table", help="cohort table (CSV/XLSX)")
    train.add_argument("--outcome", required=True, help="outcome column")
    train.add_argument("--positive", nargs="+", required=True, metavar="V", help="positive values")
    train.add_argument(
        "--negative", nargs="+", metavar="V", help="negative values (default: the rest)"
    )
    train.add_argument(
        "--images-root", help="folder image paths are relative to (default: the table's)"
    )
    train.add_argument("--patient-col", help="patient id column (default: guessed)")
    train.add_argument("--image-col", help="image path column (default: guessed)")
    train.add_argument(
        "--image-pattern",
        help="one row per patient: each patient's files, e.g. '{patient_id}_*.png'",
    )
    _add_training_flags(train)
    train.set_defaults(func=run_train)

    resume = subparsers.add_parser("resume", help="continue a cancelled or interrupted run")
    resume.add_argument("run_dir", help="the run folder")
    resume.add_argument("--quiet", action="store_true", help="no progress bar")
    resume.set_defaults(func=run_resume)

    demo = subparsers.add_parser(
        "demo", help="cpu-fast cross-validation on the shipped demo cohort (minutes, offline)"
    )
    demo.add_argument("--init", choices=INITS, default="xrv", help="backbone (default xrv)")
    demo.add_argument("--out", help="run folder (default: a new one under the runs folder)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.add_argument("--final-model", action="store_true", help="also train on every patient")
    demo.add_argument("--no-report", action="store_true", help="do not write report.html")
    demo.set_defaults(func=run_demo)


def _add_training_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", choices=tuple(PRESETS), default="paper", help="base recipe")
    p.add_argument("--init", choices=INITS, help="backbone initialisation")
    p.add_argument("--strategy", choices=STRATEGIES)
    p.add_argument("--cutmix", action=argparse.BooleanOptionalAction, default=None,
                   help="CutMix during fine-tuning")  # fmt: skip
    p.add_argument("--folds", type=int, help="cross-validation folds")
    p.add_argument("--repeats", type=int, help="cross-validation repeats")
    p.add_argument("--epochs", type=int, help="fine-tuning epochs (after the probe)")
    p.add_argument("--probe-epochs", type=int, help="linear-probe epochs")
    p.add_argument("--resolution", type=int, help="image side in pixels")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"))
    p.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"))
    p.add_argument("--seed", type=int)
    p.add_argument("--threshold", choices=("fixed", "youden"), dest="threshold_method",
                   help="class threshold: fixed 0.5 (default) or Youden's J from an inner CV "
                   "of each fold's training patients (about 3x the time)")  # fmt: skip
    p.add_argument("--final-model", action="store_true",
                   help="after the cross-validation, train one model on every patient and "
                   "export it to RUN_DIR/final_model/")  # fmt: skip
    p.add_argument("--no-report", action="store_true", help="do not write report.html")
    p.add_argument("--config", help="a TrainConfig JSON file (applied before the flags)")
    p.add_argument("--out", help="run folder (default: <runs folder>/<time>-<name>)")
    p.add_argument("--name", default="train", help="short name in the default run folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


FLAG_FIELDS = {
    "init": "init",
    "strategy": "strategy",
    "folds": "cv_folds",
    "repeats": "cv_repeats",
    "epochs": "epochs",
    "probe_epochs": "probe_epochs",
    "resolution": "resolution",
    "batch_size": "batch_size",
    "device": "device",
    "precision": "precision",
    "seed": "seed",
    "threshold_method": "threshold_method",
}


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    cfg = preset(args.preset)
    if getattr(args, "config", None):
        import json

        try:
            cfg = TrainConfig.from_json(json.loads(Path(args.config).read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read the config: {exc}", file=args.config) from exc
    changes = {field: getattr(args, flag) for flag, field in FLAG_FIELDS.items()}
    changes = {k: v for k, v in changes.items() if v is not None}
    if args.cutmix is not None:
        changes["cutmix_finetune"] = type(cfg.cutmix_finetune)(
            enabled=args.cutmix, p=cfg.cutmix_finetune.p, alpha=cfg.cutmix_finetune.alpha
        )
    return cfg.replace(**changes)


# ----- commands --------------------------------------------------------------------------
def run_train(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    source = {
        "table": str(Path(args.table).resolve()),
        "images_root": str(Path(args.images_root).resolve()) if args.images_root else None,
        "mapping": _mapping_json(args),
        "image_pattern": args.image_pattern,
        "outcome": {
            "column": args.outcome,
            "positive": args.positive,
            "negative": args.negative or [],
        },
    }
    return _train_new(cfg, source, args.out, args.name, args.quiet, _options(args))


def run_demo(args: argparse.Namespace) -> int:
    from core.models.registry import weights_available

    cfg = preset("cpu-fast").replace(init=args.init)
    if args.init != "random" and not weights_available(args.init):
        print(
            f"The {args.init} weights are not on this machine, so the demo uses random "
            f"initialisation; add them with `bpd weights import FILE --init {args.init}`.",
            file=sys.stderr,
        )
        cfg = cfg.replace(init="random")
    table = paths.demo_cohort_table()
    source = {
        "table": str(table),
        "images_root": None,
        "mapping": None,
        "outcome": {"column": "diagnosis", "positive": ["PNEUMONIA"], "negative": []},
    }
    return _train_new(cfg, source, args.out, "demo", args.quiet, _options(args))


def run_resume(args: argparse.Namespace) -> int:
    from core.runs.folder import RunFolder

    run = RunFolder.open(args.run_dir)
    saved = run.config()
    cfg = TrainConfig.from_json(saved["train"])
    if run.state().get("status") == "finished" and run.summary():
        print(f"{run.path} is already finished.", file=sys.stderr)
        _print_result(run.path, run.summary())
        return 0
    prepared = _prepare(saved["cohort_source"], cfg, args.quiet)
    return _execute(run, prepared, cfg, args.quiet, saved.get("options") or {})


# ----- shared steps ------------------------------------------------------------------------
def _train_new(
    cfg: TrainConfig,
    source: dict[str, Any],
    out: str | None,
    name: str,
    quiet: bool,
    options: dict[str, bool],
) -> int:
    from core.runs.folder import RunFolder, default_run_dir, now_iso, package_versions

    prepared = _prepare(source, cfg, quiet)
    cohort = prepared.cohort
    if not cohort.is_usable(min_per_class=cfg.cv_folds):
        raise InputError(
            f"{cfg.cv_folds}-fold cross-validation needs at least {cfg.cv_folds} usable patients "
            f"of each outcome; the cohort has {cohort.n_positive} positive and "
            f"{cohort.n_negative} negative (run `bpd cohort check` to see what was excluded)",
            file=source["table"],
        )
    config = {
        "train": cfg.to_json(),
        "cohort_source": source,
        "preprocess": _preprocess_cfg(cfg).to_json(),
        "versions": package_versions(),
        "seed": cfg.seed,
        "created": now_iso(),
        "options": options,
    }
    run = RunFolder.create(Path(out) if out else default_run_dir(name), config, cohort.to_json())
    return _execute(run, prepared, cfg, quiet, options)


def _preprocess_cfg(cfg: TrainConfig):
    from core.cohort.preprocess import PreprocessConfig

    return PreprocessConfig(resolution=cfg.resolution)


def _prepare(source: dict[str, Any], cfg: TrainConfig, quiet: bool):
    from core.cohort.loader import load_recorded_cohort
    from core.cohort.prepare import prepare_images

    cohort = load_recorded_cohort(source)
    bar = None if quiet else ProgressBar("images")
    prepared = prepare_images(cohort, _preprocess_cfg(cfg), on_progress=bar.update if bar else None)
    if bar:
        bar.close()
    return prepared


def _execute(run, prepared, cfg: TrainConfig, quiet: bool, options: dict[str, bool]) -> int:
    from core.models.registry import create_model
    from core.runs.runner import run_cv
    from core.training.data import TrainingData
    from core.training.runtime import CancelToken

    cancel = CancelToken()
    previous = _install_signal_handlers(cancel)
    printer = None if quiet else EventPrinter()
    print(f"run folder: {run.path}", file=sys.stderr)
    try:
        summary = run_cv(
            run,
            TrainingData.from_prepared(prepared),
            cfg,
            lambda seed: create_model(cfg.init, dropout=cfg.dropout, seed=seed),
            cancel=cancel,
            on_event=printer.on_event if printer else None,
            patients=prepared.cohort.patients,
            final_model=bool(options.get("final_model")),
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if printer:
            printer.close()
    _print_result(run.path, summary)
    if options.get("final_model"):
        print(f"final model: {run.path / 'final_model'}")
    if options.get("report", True):
        _write_report(run.path)
    return 0


def _install_signal_handlers(cancel: CancelToken) -> dict[int, Any]:
    def handler(signum: int, _frame: Any) -> None:
        if cancel.cancelled:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        cancel.cancel(f"stopped by {signal.Signals(signum).name}")
        print("\nstopping after the current batch (the run stays resumable)...", file=sys.stderr)

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    return previous


def _print_result(run_dir: Path, summary: dict[str, Any]) -> None:
    print(f"run folder: {run_dir}")
    for name in METRIC_NAMES:
        m = summary.get(name) or {}
        if m.get("mean") is None:
            print(f"{name:>18}: undefined")
            continue
        sd = m.get("sd")
        sd_text = f" +- {sd:.3f}" if sd is not None else ""
        print(f"{name:>18}: {m['mean']:.3f}{sd_text} (n={m.get('n')})")
    print(f"{'pooled_auroc':>18}: {_fmt(summary.get('pooled_auroc'))}")
    print(f"patients {summary.get('n_patients')} (positive {summary.get('n_positive')}), "
          f"folds {summary.get('n_folds')}")  # fmt: skip


def _fmt(v: float | None) -> str:
    return "undefined" if v is None else f"{v:.3f}"


class ProgressBar:
    """A one-line bar with ETA on stderr, redrawn at most every 0.2 s."""

    def __init__(self, label: str, width: int = 30):
        self.label, self.width = label, width
        self._last = 0.0
        self._shown = False
        self.stream = sys.stderr

    def update(self, done: float, total: float | None = None, eta_s: float | None = None,
               note: str = "", force: bool = False) -> None:  # fmt: skip
        now = time.monotonic()
        finished = total is not None and done >= total
        if not (force or finished) and now - self._last < 0.2:
            return
        self._last = now
        total = total or 1
        frac = max(0.0, min(1.0, done / total))
        filled = int(frac * self.width)
        eta = f" ETA {_duration(eta_s)}" if eta_s is not None else ""
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {frac * 100:5.1f}%{eta} {note}".ljust(100)[:120])
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class EventPrinter:
    """Turns training events into the progress bar and one line per finished fold."""

    def __init__(self) -> None:
        self.bar = ProgressBar("training")
        self.note = ""
        self.n_folds = 0
        self.done_folds = 0

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "run_started":
            self.n_folds = event["n_folds_total"]
        elif kind == "epoch_started":
            epoch = f"{event['epoch'] + 1}/{event['n_epochs']}"
            self.note = f"{event['fold_id']} epoch {epoch} {event['phase']}"
        elif kind == "progress":
            self.bar.update(event["done"], event["total"], event.get("eta_s"), self.note)
        elif kind == "fold_finished" and event["fold_id"] == "final":
            self.bar.close()
            print("final model trained on every patient", file=sys.stderr)
        elif kind == "fold_finished":
            self.done_folds += 1
            self.bar.close()
            auc = event["metrics"].get("auroc")
            print(f"fold {event['fold_id']} ({self.done_folds}/{self.n_folds}): AUROC {_fmt(auc)}",
                  file=sys.stderr)  # fmt: skip
        elif kind == "warning":
            self.bar.close()
            print(f"warning: {event['message']}", file=sys.stderr)
        elif kind == "run_cancelled":
            self.bar.close()
            print(event["message"], file=sys.stderr)

    def close(self) -> None:
        self.bar.close()
