"""`bpd study`: the paper's grid of initialisations x strategies as one resumable study.

    bpd study TABLE --outcome COL --positive V ... [--inits ...] [--strategies ...]
    bpd study --config STUDY.json          (a StudyConfig, e.g. from the app)
    bpd study resume STUDY_DIR             (also: bpd resume STUDY_DIR)

Every arm is a run folder inside the study folder, on identical folds and seeds
(core.study). Progress goes to stderr; the study folder, the table and the report's
path to stdout. Ctrl-C stops after the current batch (exit 130); the study resumes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli.train_options import FLAG_FIELDS
from core.errors import Cancelled, InputError
from core.study.config import STRATEGIES
from core.training.config import CV_SCHEMES, INITS, PRESETS

# flag -> TrainConfig field of the recipe every arm shares: bpd train's, less what the arms
# vary (init, strategy) and the threshold (the study scores at the recipe's own)
RECIPE_FLAGS = {
    flag: field
    for flag, field in FLAG_FIELDS.items()
    if flag not in ("init", "strategy", "threshold_method")
}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "study",
        help="the paper's init x strategy grid on one cohort, same folds, one report",
        description="Train every init x strategy arm on identical folds and seeds, then "
        "write the study report (table, paired tests, forest plot). `bpd study resume "
        "STUDY_DIR` continues a stopped study.",
    )
    p.add_argument("table", nargs="?", help="cohort table (CSV/XLSX), or the word resume")
    p.add_argument("study_dir", nargs="?", help=argparse.SUPPRESS)  # after `resume`
    p.add_argument("--outcome", help="outcome column")
    p.add_argument("--positive", nargs="+", metavar="V", help="positive values")
    p.add_argument("--negative", nargs="+", metavar="V", help="negative values")
    p.add_argument("--negative-rest", action="store_true",
                   help="every recorded value not named positive is negative")  # fmt: skip
    p.add_argument("--sheet", help="XLSX: the sheet to read, by name or position")
    p.add_argument("--images-root", help="folder image paths are relative to")
    p.add_argument("--patient-col", help="patient id column (default: guessed)")
    p.add_argument("--image-col", help="image path column (default: guessed)")
    p.add_argument("--image-pattern", help="one row per patient: e.g. '{patient_id}_*.png'")
    p.add_argument("--inits", nargs="+", choices=INITS, help="default: xrv imagenet random")
    p.add_argument("--strategies", nargs="+", choices=tuple(STRATEGIES),
                   help="default: all five")  # fmt: skip
    p.add_argument("--preset", choices=tuple(PRESETS), help="base recipe (default paper)")
    p.add_argument("--folds", type=int, help="cross-validation folds")
    p.add_argument("--repeats", type=int, help="cross-validation repeats")
    p.add_argument("--cv-scheme", choices=CV_SCHEMES,
                   help="test folds: paper (the authors' 1:1 folds) or stratified")  # fmt: skip
    p.add_argument("--probe-augment", action=argparse.BooleanOptionalAction, default=None,
                   help="linear probe on augmented batches (the authors') or on features "
                   "computed once (--no-probe-augment)")  # fmt: skip
    p.add_argument("--epochs", type=int, help="fine-tuning epochs after the probe")
    p.add_argument("--probe-epochs", type=int, help="linear-probe epochs")
    p.add_argument("--epochs-without-probe", type=int,
                   help="fine-tuning epochs of arms without the probe (default: paper "
                   "probe + fine-tuning epochs = 30; other presets their --epochs)")  # fmt: skip
    p.add_argument("--resolution", type=int, help="image side in pixels")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"))
    p.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"))
    p.add_argument("--seed", type=int)
    p.add_argument("--no-report", action="store_true", help="no report.html per arm")
    p.add_argument("--config", metavar="FILE", help="a study config JSON (StudyConfig); "
                   "flags given beside it override it")  # fmt: skip
    p.add_argument(
        "--write-config",
        metavar="FILE",
        help="write the study config JSON to FILE and stop (nothing trains)",
    )
    p.add_argument("--out", help="study folder (default: <runs folder>/<time>-study)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_study_cmd)


def run_study_cmd(args: argparse.Namespace) -> int:
    if args.table == "resume":
        if not args.study_dir:
            raise InputError("name the study folder: bpd study resume STUDY_DIR")
        return resume_study(args.study_dir, args.quiet)
    if args.study_dir:
        raise InputError(f"unexpected argument {args.study_dir!r} (one cohort table only)")
    config = study_config_from_args(args)
    if args.write_config:
        print(f"study config: {config.write(args.write_config)}")
        return 0
    from core.runs.folder import default_run_dir
    from core.study.folder import StudyFolder

    if args.out:
        from core.outputs import check_output_dir

        check_output_dir(args.out)
    path = Path(args.out) if args.out else default_run_dir("study")
    study = StudyFolder.create(path, config)
    return _run(study, args.quiet)


def resume_study(study_dir: str | Path, quiet: bool = False) -> int:
    from core.study.folder import StudyFolder

    return _run(StudyFolder.existing(study_dir), quiet)


def study_config_from_args(args: argparse.Namespace):
    from core.cli.train_options import cohort_from_args
    from core.study.config import StudyConfig, read_study_config, study_train_config

    base = read_study_config(args.config) if args.config else None
    name = args.preset or (base.preset if base else "paper")
    overrides = {field: getattr(args, flag) for flag, field in RECIPE_FLAGS.items()}
    if base and not args.preset:
        train = base.train.replace(**{k: v for k, v in overrides.items() if v is not None})
    else:
        train = study_train_config(name, overrides)
    cohort = cohort_from_args(args, base.cohort if base else None)
    return StudyConfig(
        cohort=cohort,
        train=train,
        inits=tuple(args.inits or (base.inits if base else INITS)),
        strategies=tuple(args.strategies or (base.strategies if base else STRATEGIES)),
        preset=name,
        epochs_without_probe=args.epochs_without_probe
        or (base.epochs_without_probe if base else None),
        report=(base.report if base else True) and not args.no_report,
    )


def _run(study, quiet: bool) -> int:
    from core.cli.train_cmd import EventPrinter, _install_signal_handlers, _prepare
    from core.study.report import write_study_report
    from core.study.runner import arm_run_config, run_study
    from core.training.runtime import CancelToken

    def say(line: str) -> None:
        print(line, file=sys.stderr)

    config = study.config()
    arms = config.arms()
    say(f"study folder: {study.path} ({len(arms)} arms: {', '.join(a.name for a in arms)})")
    with study.lock():
        start = arm_run_config(config, arms[0]).with_crops()
        prepared = _prepare(start, quiet)  # once: every arm trains on the same images
        printers: list[EventPrinter] = []

        def on_event(_arm):
            if quiet:
                return None
            printers.append(EventPrinter())
            return printers[-1].on_event

        cancel = CancelToken()
        previous = _install_signal_handlers(cancel)
        try:
            run_study(study, prepared, cancel=cancel, crops=start.crops, say=say,
                      on_event=on_event)  # fmt: skip
        except (Cancelled, KeyboardInterrupt):
            say(f"the study stopped; continue it with `bpd study resume {study.path}`")
            raise
        finally:
            import signal

            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for printer in printers:
                printer.close()
        report = write_study_report(study)
    _print_table(study)
    print(f"study report: {report}")
    return 0


def _print_table(study) -> None:
    from core.study.report import study_arms

    print(f"study folder: {study.path}")
    print(f"{'arm':<30}{'AUROC':>16}{'bal. acc.':>16}{'F1':>16}  status")
    for arm in study_arms(study):
        summary = (arm.run_dir and study.arm_run(arm.name).summary()) or {}
        cells = [_mean_sd(summary.get(m)) for m in ("auroc", "balanced_accuracy", "f1")]
        note = f" ({arm.note})" if arm.status == "skipped" else ""
        print(f"{arm.name:<30}{cells[0]:>16}{cells[1]:>16}{cells[2]:>16}  {arm.status}{note}")


def _mean_sd(stat) -> str:
    if not stat or stat.get("mean") is None:
        return "-"
    sd = stat.get("sd")
    return f"{stat['mean']:.3f}" + (f" +- {sd:.3f}" if sd is not None else "")
