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
from core.cli.train_options import options_from_args, run_config_from_args
from core.cli.train_options import write_report as _write_report
from core.errors import InputError
from core.scoring.metrics import METRIC_NAMES
from core.training.config import CV_SCHEMES, INITS, PRESETS, STRATEGIES, preset

if TYPE_CHECKING:  # torch loads only when a training command runs
    from core.runs.events import Event
    from core.runs.run_config import RunConfig
    from core.training.runtime import CancelToken


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("train", help="cross-validated fine-tuning on a cohort table")
    train.add_argument("table", nargs="?",
                       help="cohort table (CSV/XLSX); may come from --config instead")  # fmt: skip
    train.add_argument("--outcome", help="outcome column (required unless --config names it)")
    train.add_argument("--positive", nargs="+", metavar="V", help="positive values")
    train.add_argument(
        "--negative", nargs="+", metavar="V",
        help="negative values; a value named in neither list excludes its patient",
    )  # fmt: skip
    train.add_argument("--negative-rest", action="store_true",
                       help="every recorded value not named positive is negative")  # fmt: skip
    train.add_argument("--sheet", help="XLSX: the sheet to read, by name or position (1 = first)")
    train.add_argument(
        "--images-root", help="folder image paths are relative to (default: the table's)"
    )
    train.add_argument("--patient-col", help="patient id column (default: guessed)")
    train.add_argument("--image-col", help="image path column (default: guessed)")
    train.add_argument(
        "--image-pattern",
        help="one row per patient: each patient's files, e.g. '{patient_id}_*.png'",
    )
    train.add_argument("--crops", metavar="FILE",
                       help="per-image crop boxes and rotations (<table>.crops.csv, "
                       "docs/method.md 'Crops'); the run records them")  # fmt: skip
    _add_training_flags(train)
    train.set_defaults(func=run_train)

    resume = subparsers.add_parser("resume", help="continue a cancelled or interrupted run")
    resume.add_argument("run_dir", help="the run folder")
    resume.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_workers_flag(resume, "Default: what the run recorded.")
    resume.add_argument("--restart-fold", action="store_true",
                        help="a fold whose checkpoint is damaged starts again from its start "
                        "(the file is kept beside it as checkpoint.pt.damaged)")  # fmt: skip
    resume.set_defaults(func=run_resume)

    demo = subparsers.add_parser(
        "demo", help="cpu-fast cross-validation on the shipped demo cohort (minutes, offline)"
    )
    demo.add_argument("--init", choices=INITS, default="xrv", help="backbone (default xrv)")
    demo.add_argument("--out", help="run folder (default: a new one under the runs folder)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.add_argument("--final-model", action="store_true", help="also train on every patient")
    demo.add_argument("--no-report", action="store_true", help="do not write report.html")
    _add_workers_flag(demo)
    demo.set_defaults(func=run_demo)


def _add_training_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", choices=tuple(PRESETS), default="paper", help="base recipe")
    p.add_argument("--init", choices=INITS, help="backbone initialisation")
    p.add_argument("--strategy", choices=STRATEGIES)
    p.add_argument("--cutmix", action=argparse.BooleanOptionalAction, default=None,
                   help="CutMix during fine-tuning")  # fmt: skip
    p.add_argument("--folds", type=int, help="cross-validation folds")
    p.add_argument("--repeats", type=int, help="cross-validation repeats")
    p.add_argument("--cv-scheme", choices=CV_SCHEMES, dest="cv_scheme",
                   help="test folds: paper = the authors' 1:1 folds (positives in k chunks, "
                   "each with as many negatives; leftover negatives never tested; default of "
                   "the paper preset), stratified = stratified patient-grouped k-fold, every "
                   "patient tested once per repeat (default of cpu-fast)")  # fmt: skip
    p.add_argument("--probe-augment", action=argparse.BooleanOptionalAction, default=None,
                   help="linear probe on augmented batches with the backbone's BatchNorm on "
                   "batch statistics (the paper preset), or --no-probe-augment: on features "
                   "computed once (cpu-fast; faster, a different method)")  # fmt: skip
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
    p.add_argument("--config", metavar="FILE",
                   help="a RunConfig JSON (recipe, cohort and options; then no TABLE is "
                   "needed) or a TrainConfig JSON (the recipe); flags given beside it "
                   "override it")  # fmt: skip
    p.add_argument("--out", help="run folder (default: <runs folder>/<time>-<name>)")
    p.add_argument("--name", default="train", help="short name in the default run folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_workers_flag(p)


def _add_workers_flag(p: argparse.ArgumentParser, default: str = "Default 0.") -> None:
    p.add_argument("--workers", type=_workers, metavar="N",
                   help="folds trained at once, each in its own process with cores/N "
                   "threads (the same results as one worker with as many threads; another "
                   "thread count sums in another order, which training can amplify). "
                   "0: automatic, 1 on a GPU, else one "
                   "per 2 CPU cores within the memory available (each fold needs about "
                   f"0.7 GB + 1.1 KB per pixel of a batch + the images). {default}")  # fmt: skip


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("0 (automatic) or more")
    return value


# ----- commands --------------------------------------------------------------------------
def run_train(args: argparse.Namespace) -> int:
    return _train_new(run_config_from_args(args), args.out, args.name, args.quiet)


def run_demo(args: argparse.Namespace) -> int:
    from core.cohort.source import CohortSource, OutcomeSpec
    from core.models.registry import weights_available
    from core.runs.run_config import RunConfig

    cfg = preset("cpu-fast").replace(init=args.init)
    if args.init != "random" and not weights_available(args.init):
        print(
            f"The {args.init} weights are not on this machine, so the demo uses random "
            f"initialisation; add them with `bpd weights import FILE --init {args.init}`.",
            file=sys.stderr,
        )
        cfg = cfg.replace(init="random")
    cohort = CohortSource(
        str(paths.demo_cohort_table()),
        OutcomeSpec("diagnosis", ("PNEUMONIA",), ("NORMAL",)),
    )
    run_config = RunConfig(cfg, cohort, options_from_args(args, None))
    return _train_new(run_config, args.out, "demo", args.quiet)


def run_resume(args: argparse.Namespace) -> int:
    from core.runs.folder import RunFolder
    from core.study.folder import StudyFolder

    if StudyFolder.looks_like_study(args.run_dir):  # a study: resume all its arms
        from core.cli.study_cmd import resume_study

        return resume_study(args.run_dir, args.quiet)

    # one trainer per run (exit 2 if one is running); taken before open(), whose clean-up
    # of interrupted writes must not touch a running trainer's temp files
    with RunFolder.existing(args.run_dir).lock():
        return _resume_locked(args)


def _resume_locked(args: argparse.Namespace) -> int:
    from core.runs.folder import RunFolder
    from core.runs.run_config import RunConfig

    run = RunFolder.open(args.run_dir)
    if getattr(args, "restart_fold", False):
        for path in run.set_aside_damaged_checkpoints():
            print(f"set aside the damaged checkpoint {path}; its fold restarts from its start",
                  file=sys.stderr)  # fmt: skip
    run_config = RunConfig.from_json(run.config())
    if getattr(args, "workers", None) is not None:  # this session only; config.json keeps
        options = run_config.options  # what the run was started with
        run_config = run_config.replace(options=type(options)(
            options.final_model, options.report, args.workers))  # fmt: skip
    if run.state().get("status") == "finished" and run.summary():
        print(f"{run.path} is already finished.", file=sys.stderr)
        _print_result(run.path, run.summary())
        return 0
    prepared = _prepare(run_config, args.quiet)
    return _execute(run, prepared, run_config, args.quiet)


# ----- shared steps ------------------------------------------------------------------------
def _train_new(run_config: RunConfig, out: str | None, name: str, quiet: bool) -> int:
    from core.runs.folder import RunFolder, default_run_dir, now_iso, package_versions

    cfg = run_config.train
    if out:  # before minutes of image preparation: --out must be a folder (or new)
        from core.outputs import check_output_dir

        check_output_dir(out)
    run_config = run_config.with_crops()  # the sidecar's boxes, frozen into config.json
    prepared = _prepare(run_config, quiet)
    cohort = prepared.cohort
    if not cohort.is_usable(min_per_class=cfg.cv_folds):
        raise InputError(
            f"{cfg.cv_folds}-fold cross-validation needs at least {cfg.cv_folds} usable patients "
            f"of each outcome; the cohort has {cohort.n_positive} positive and "
            f"{cohort.n_negative} negative (run `bpd cohort check` to see what was excluded)",
            file=run_config.cohort.table,
        )
    run_config = run_config.replace(versions=package_versions(), created=now_iso())
    path = Path(out) if out else default_run_dir(name)
    run = RunFolder.create(path, run_config.to_json(), cohort.to_json())
    with run.lock():  # one trainer per run folder (core.runs.lock)
        return _execute(run, prepared, run_config, quiet)


def _prepare(run_config: RunConfig, quiet: bool):
    from core.cohort.loader import load_source
    from core.cohort.prepare import prepare_images

    cohort = load_source(run_config.cohort)
    bar = None if quiet else ProgressBar("images")
    on_progress = bar.update if bar else None
    prepared = prepare_images(
        cohort, run_config.preprocess, on_progress=on_progress, crops=run_config.crops
    )
    if bar:
        bar.close()
    return prepared


def _execute(run, prepared, run_config: RunConfig, quiet: bool) -> int:
    from core.runs.runner import run_cv
    from core.runs.workers import InitModelFactory
    from core.training.data import TrainingData
    from core.training.runtime import CancelToken

    cfg, options = run_config.train, run_config.options
    cancel = CancelToken()
    previous = _install_signal_handlers(cancel)
    printer = None if quiet else EventPrinter()
    print(f"run folder: {run.path}", file=sys.stderr)
    try:
        summary = run_cv(
            run,
            TrainingData.from_prepared(prepared),
            cfg,
            InitModelFactory(cfg.init, cfg.dropout),  # picklable: worker processes
            cancel=cancel,
            on_event=printer.on_event if printer else None,
            patients=prepared.cohort.patients,
            final_model=options.final_model,
            workers=options.workers,
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if printer:
            printer.close()
    _print_result(run.path, summary)
    if options.final_model:
        print(f"final model: {run.path / 'final_model'}")
    if options.report:
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
    ensemble = summary.get("ensemble_auroc", summary.get("pooled_auroc"))
    print(f"{'ensemble_auroc':>18}: {_fmt(ensemble)} (repeat-averaged out-of-fold "
          "probabilities, one per patient)")  # fmt: skip
    testing = summary.get("testing") or {}
    if testing.get("per_repeat"):
        tested = ", ".join(str(r["tested"]) for r in testing["per_repeat"])
        print(f"patients tested per repeat: {tested}; never tested: "
              f"{testing.get('never_tested')}")  # fmt: skip
    print(f"patients {summary.get('n_patients')} (positive {summary.get('n_positive')}), "
          f"folds {summary.get('n_folds')}")  # fmt: skip
    if summary.get("caveat"):  # a tiny cohort (core.runs.summary.small_cohort_caveat)
        print(f"caveat: {summary['caveat']}")


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
    """Turns training events into the progress bar and one line per finished fold, from
    the same reducer the app plots from (core.runs.run_progress)."""

    def __init__(self) -> None:
        from core.runs.run_progress import RunProgress

        self.bar = ProgressBar("training")
        self.progress = RunProgress()

    def on_event(self, event: Event) -> None:
        p = self.progress
        p.apply(event)
        if event.type == "progress" and p.done is not None and self._fold_running():
            self.bar.update(p.done, p.total, p.eta_s, p.current_step())
        elif event.type == "fold_finished" and p.folds[event.fold_id].is_final_model:
            self.bar.close()
            print("final model trained on every patient", file=sys.stderr)
        elif event.type == "fold_finished":
            self.bar.close()
            auc = p.folds[event.fold_id].metrics.get("auroc")
            print(f"fold {event.fold_id} ({p.n_folds_finished()}/{p.n_folds_total}): "
                  f"AUROC {_fmt(auc)}", file=sys.stderr)  # fmt: skip
        elif event.type == "warning":
            self.bar.close()
            print(f"warning: {p.warnings[-1]}", file=sys.stderr)
        elif event.type == "run_cancelled":
            self.bar.close()
            print(p.message, file=sys.stderr)

    def _fold_running(self) -> bool:
        """Between folds (after a fold's line) the bar stays closed until the next one."""
        fold = self.progress.folds.get(self.progress.current_fold or "")
        return fold is not None and fold.metrics is None

    def close(self) -> None:
        self.bar.close()
