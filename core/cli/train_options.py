"""`bpd train` flags -> RunConfig (core.runs.run_config), the one thing that starts a run.

`--config FILE` is the base when given: a whole RunConfig JSON (cohort included, so no
table argument is needed; relative paths in it are relative to FILE's folder) or a bare
TrainConfig JSON (then the table and outcome come from the flags). Flags given beside
it override it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import InputError
from core.training.config import TrainConfig, preset

if TYPE_CHECKING:
    from core.cohort.source import CohortSource
    from core.runs.run_config import RunConfig, RunOptions

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
    "cv_scheme": "cv_scheme",
    "probe_augment": "probe_augment",
}


def run_config_from_args(args: argparse.Namespace) -> RunConfig:
    from core.runs.run_config import RunConfig, read_config_file

    base: RunConfig | None = None
    train = preset(args.preset)
    if args.config:
        loaded = read_config_file(args.config)
        if isinstance(loaded, RunConfig):
            base, train = _paths_from(loaded, Path(args.config).parent), loaded.train
            kind = "a run config (recipe, cohort and options)"
        else:
            train = loaded
            kind = "a training config (the recipe; cohort from the command line)"
        print(f"--config {args.config}: {kind}", file=sys.stderr)
    return RunConfig(
        train=train_config_from_args(train, args),
        cohort=cohort_from_args(args, base.cohort if base else None),
        options=options_from_args(args, base.options if base else None),
        # a run config's recorded boxes are kept unless another sidecar is named
        crops=base.crops if base and not getattr(args, "crops", None) else None,
    )


def train_config_from_args(cfg: TrainConfig, args: argparse.Namespace) -> TrainConfig:
    changes = {field: getattr(args, flag) for flag, field in FLAG_FIELDS.items()}
    changes = {k: v for k, v in changes.items() if v is not None}
    if args.cutmix is not None:
        changes["cutmix_finetune"] = type(cfg.cutmix_finetune)(
            enabled=args.cutmix, p=cfg.cutmix_finetune.p, alpha=cfg.cutmix_finetune.alpha
        )
    return cfg.replace(**changes)


def cohort_from_args(args: argparse.Namespace, base: CohortSource | None) -> CohortSource:
    """The cohort source of the flags over `base` (a --config run config's). Columns the
    user names are completed from the header here, so config.json records them all."""
    from core.cohort.source import CohortSource, OutcomeSpec
    from core.cohort.table import read_table

    table = args.table or (base.table if base else None)
    if not table:
        raise InputError("give the cohort table (or --config with a run config that names one)")
    outcome = base.outcome if base else None
    if args.outcome or args.positive or args.negative or args.negative_rest:
        column = args.outcome or (outcome.column if outcome else None)
        positive = args.positive or (outcome.positive if outcome else ())
        if not column or not positive:
            raise InputError("name the outcome column and its positive values "
                             "(--outcome COL --positive V ...)", file=table)  # fmt: skip
        outcome = OutcomeSpec(
            column,
            tuple(positive),
            tuple(args.negative or (outcome.negative if outcome and not args.positive else ())),
            bool(args.negative_rest or (outcome.negative_rest if outcome else False)),
        )
    if outcome is None:
        raise InputError("name the outcome column and its positive values "
                         "(--outcome COL --positive V ...)", file=table)  # fmt: skip
    source = (base or CohortSource(str(table))).replace(
        table=str(Path(table).resolve()),
        outcome=outcome,
        images_root=_path(args.images_root) or (base.images_root if base else None),
        crops=_path(getattr(args, "crops", None)) or (base.crops if base else None),
    )
    for flag, name in (("patient_col", "patient_column"), ("image_col", "image_column"),
                       ("image_pattern", "image_pattern"), ("sheet", "sheet")):  # fmt: skip
        if getattr(args, flag, None):
            source = source.replace(**{name: getattr(args, flag)})
    if args.image_pattern and not args.image_col:
        source = source.replace(image_column=None)  # a pattern means one row per patient
    if (args.patient_col or args.image_col or args.image_pattern) and not source.is_complete:
        source = source.resolved(list(read_table(source.table, source.sheet).columns))
    return source


def options_from_args(args: argparse.Namespace, base: RunOptions | None) -> RunOptions:
    from core.runs.run_config import RunOptions

    base = base or RunOptions()
    workers = getattr(args, "workers", None)
    return RunOptions(
        final_model=bool(args.final_model or base.final_model),
        report=base.report and not args.no_report,
        workers=base.workers if workers is None else workers,
    )


def _paths_from(run_config: RunConfig, folder: Path) -> RunConfig:
    """Relative table and images-root paths in a config file are relative to its folder."""
    cohort = run_config.cohort
    table = (folder / cohort.table).resolve()
    root = (folder / cohort.images_root).resolve() if cohort.images_root else None
    crops = str((folder / cohort.crops).resolve()) if cohort.crops else None
    return run_config.replace(cohort=cohort.replace(
        table=str(table), images_root=str(root) if root else None, crops=crops
    ))  # fmt: skip


def _path(value: str | None) -> str | None:
    return str(Path(value).resolve()) if value else None


def write_report(run_dir: Path) -> None:
    """report.html beside the results; a failed report never fails the finished run."""
    from core.evaluation.report import write_report as render

    try:
        path = render(run_dir)
    except Exception as exc:  # the run is done and on disk; say why the report is missing
        print(f"warning: report.html could not be written: {exc}", file=sys.stderr)
        return
    print(f"report: {path}")
