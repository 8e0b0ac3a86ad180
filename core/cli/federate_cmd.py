"""`bpd federate simulate`: several sites trained together through Flower on this machine.

Flower is an optional extra (`pip install 'bpd-studio[federated]'`); without it the
command says so and exits 2. Progress goes to stderr; the run folder and the comparison
table to stdout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.errors import InputError
from core.training.config import INITS, PRESETS, TrainConfig, preset

DEFAULT_PROBE_ROUNDS = 4


def register(subparsers: argparse._SubParsersAction) -> None:
    fed = subparsers.add_parser(
        "federate", help="federated fine-tuning with Flower (optional extra: bpd-studio[federated])"
    )
    sub = fed.add_subparsers(dest="federate_command", metavar="COMMAND")
    sim = sub.add_parser(
        "simulate",
        help="N sites on this machine through Flower's runtime (SuperLink + one SuperNode "
        "per site on 127.0.0.1); compares federated, left-out-site, site-alone and pooled",
    )
    sim.add_argument(
        "--site",
        action="append",
        required=True,
        metavar="NAME=TABLE",
        help="a site: a name (letters, digits, _) and its cohort table; repeat",
    )
    sim.add_argument(
        "--images-root", help="folder image paths are relative to (default: each table's)"
    )
    sim.add_argument("--outcome", required=True, help="outcome column (the same at every site)")
    sim.add_argument("--positive", nargs="+", required=True, metavar="V", help="positive values")
    sim.add_argument(
        "--negative", nargs="+", metavar="V", help="negative values (default: the rest)"
    )
    sim.add_argument("--preset", choices=tuple(PRESETS), default="cpu-fast", help="base recipe")
    sim.add_argument("--config", help="a TrainConfig JSON file (instead of the preset)")
    sim.add_argument(
        "--rounds",
        type=int,
        help="fine-tuning rounds (one local epoch each; the one-cycle schedule and the "
        "unfreezing follow them; default: the recipe's fine-tuning epochs)",
    )
    sim.add_argument(
        "--probe-rounds",
        type=int,
        help=f"linear-probe rounds before them (default {DEFAULT_PROBE_ROUNDS}; "
        "every round costs seconds of Flower messaging)",
    )
    sim.add_argument("--folds", type=int, help="patient-level folds inside each site")
    sim.add_argument("--resolution", type=int, help="image side in pixels")
    sim.add_argument("--batch-size", type=int)
    sim.add_argument("--init", choices=INITS, help="backbone initialisation")
    sim.add_argument("--seed", type=int)
    sim.add_argument(
        "--proximal-mu",
        type=float,
        default=0.0,
        help="FedProx: the proximal term's weight (0 = FedAvg)",
    )
    sim.add_argument("--no-loso", action="store_true", help="skip the leave-one-site-out trainings")
    sim.add_argument(
        "--compare",
        default="local,pooled",
        help="comparisons trained here after the federation: local, pooled, both (default) or none",
    )
    sim.add_argument(
        "--threads-per-site",
        type=int,
        default=0,
        help="torch threads of each site (default: CPU cores / sites)",
    )
    sim.add_argument("--out", help="run folder (default: <runs folder>/<time>-federated)")
    sim.add_argument("--quiet", action="store_true", help="no progress lines")
    sim.set_defaults(func=run_simulate)
    fed.set_defaults(func=lambda _args: _usage(fed))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def parse_site(text: str, images_root: str | None, outcome: dict):
    from core.federated.simulate import SiteSource

    name, sep, table = text.partition("=")
    if not sep or not name or not table:
        raise InputError(f"--site {text!r}: write NAME=TABLE, e.g. --site north=north/cohort.csv")
    if not Path(table).is_file():
        raise InputError("site table not found", file=table)
    return SiteSource(name.strip(), table, images_root, outcome)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    cfg = preset(args.preset)
    if args.config:
        import json

        try:
            cfg = TrainConfig.from_json(json.loads(Path(args.config).read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read the config: {exc}", file=args.config) from exc
    else:
        cfg = cfg.replace(probe_epochs=DEFAULT_PROBE_ROUNDS)
    changes = {
        "epochs": args.rounds,
        "probe_epochs": args.probe_rounds,
        "cv_folds": args.folds,
        "resolution": args.resolution,
        "batch_size": args.batch_size,
        "init": args.init,
        "seed": args.seed,
    }
    cfg = cfg.replace(**{k: v for k, v in changes.items() if v is not None})
    if cfg.cv_repeats != 1:
        cfg = cfg.replace(cv_repeats=1)  # one set of folds inside each site
    return cfg


def run_simulate(args: argparse.Namespace) -> int:
    from core.federated import require_flwr

    require_flwr()
    from core.federated.results import table_markdown
    from core.federated.simulate import simulate
    from core.runs.folder import default_run_dir

    outcome = {"column": args.outcome, "positive": args.positive, "negative": args.negative or []}
    sources = [parse_site(s, args.images_root, outcome) for s in args.site]
    compare = tuple(c for c in args.compare.split(",") if c and c != "none")
    cfg = config_from_args(args)
    if args.proximal_mu < 0:
        raise InputError(f"--proximal-mu must be >= 0, got {args.proximal_mu}")
    out = Path(args.out) if args.out else default_run_dir("federated")
    say = (lambda _m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    say(f"run folder: {out}")
    summary = simulate(
        sources,
        cfg,
        out,
        loso=not args.no_loso,
        compare=compare,
        proximal_mu=args.proximal_mu,
        threads_per_site=args.threads_per_site,
        say=say,
    )
    fed = summary["federated"]
    print(f"run folder: {out}")
    print(
        f"{fed['strategy']}, {fed['rounds']} rounds, {fed['folds_per_site']} folds per site; "
        "test-fold AUROC, mean ± SD over folds:"
    )
    print(table_markdown(fed["table"]))
    return 0
