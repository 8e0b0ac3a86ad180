"""`bpd federate simulate`: several sites trained together through Flower on this machine.

Flower is an optional extra (`pip install 'bpd-studio[federated]'`); without it the
command says so and exits 2. Progress goes to stderr; the run folder and the comparison
table to stdout.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import InputError
from core.training.config import INITS, PRESETS, TrainConfig, preset

if TYPE_CHECKING:  # the cohort modules load with a command, not with `bpd --help`
    from core.cohort.source import CohortSource, OutcomeSpec

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
    sim.add_argument("--site-crops", action="append", default=[], metavar="NAME=FILE",
                     help="a site's crop boxes (its <table>.crops.csv, docs/method.md "
                     "'Crops'); repeat per site; a site without one uses whole images")  # fmt: skip
    sim.add_argument("--outcome", required=True, help="outcome column (the same at every site)")
    sim.add_argument("--positive", nargs="+", required=True, metavar="V", help="positive values")
    _negative_flags(sim)
    _recipe_flags(sim)
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

    serve = sub.add_parser(
        "serve",
        help="coordinate real sites: a Flower SuperLink with TLS and SuperNode "
        "authentication, then the federated run (federated and left-out-site columns)",
    )
    serve.add_argument(
        "--certs",
        required=True,
        metavar="DIR",
        help="folder with ca.crt, server.pem (SANs: this server's name or address) and server.key",
    )
    serve.add_argument(
        "--site-key",
        action="append",
        required=True,
        metavar="FILE",
        help="a site's public key (OpenSSH EC key); one per site, repeat",
    )
    serve.add_argument("--host", default="0.0.0.0", help="address to listen on (default all)")
    serve.add_argument("--port", type=int, default=8000, help="the one HTTPS port (8000)")
    _recipe_flags(serve)
    serve.add_argument(
        "--proximal-mu",
        type=float,
        default=0.0,
        help="FedProx: the proximal term's weight (0 = FedAvg)",
    )
    serve.add_argument("--no-loso", action="store_true", help="skip leave-one-site-out")
    serve.add_argument(
        "--wait",
        type=float,
        default=3600.0,
        metavar="S",
        help="how long to wait for every site to connect (default 3600 s)",
    )
    serve.add_argument("--out", help="run folder (default: <runs folder>/<time>-federated)")
    serve.add_argument("--quiet", action="store_true", help="no progress lines")
    serve.set_defaults(func=run_serve)

    join = sub.add_parser(
        "join", help="take part as a site: a Flower SuperNode serving this site's cohort"
    )
    join.add_argument("table", help="this site's cohort table (stays here)")
    join.add_argument("--site", required=True, help="this site's name (letters, digits, _)")
    join.add_argument("--server", required=True, metavar="HOST:PORT", help="the SuperLink")
    join.add_argument("--ca-cert", required=True, help="the federation's CA certificate")
    join.add_argument("--site-key", required=True, help="this site's private key")
    join.add_argument("--images-root", help="folder image paths are relative to")
    join.add_argument("--outcome", required=True, help="outcome column")
    join.add_argument("--positive", nargs="+", required=True, metavar="V", help="positive values")
    _negative_flags(join)
    join.add_argument("--work-dir", help="this site's folder (default: <runs folder>/site-NAME)")
    join.add_argument("--crops", metavar="FILE",
                      help="this site's crop boxes (its <table>.crops.csv, docs/method.md "
                      "'Crops'; frozen into the site's folder when it is first made)")  # fmt: skip
    join.add_argument("--threads", type=int, default=0, help="torch threads (default all)")
    join.add_argument(
        "--runtime-port",
        type=int,
        default=9094,
        help="the SuperNode's local port for its ClientApp processes (127.0.0.1; "
        "change it only to run two sites on one machine)",
    )
    join.add_argument("--quiet", action="store_true", help="no progress lines")
    join.set_defaults(func=run_join)
    fed.set_defaults(func=lambda _args: _usage(fed))


def _negative_flags(p: argparse.ArgumentParser) -> None:
    """As `bpd train`: a value named in neither list excludes its patient; only
    --negative-rest makes every other recorded value negative (a typo must not)."""
    p.add_argument(
        "--negative",
        nargs="+",
        metavar="V",
        help="negative values; a value named in neither list excludes its patient",
    )
    p.add_argument("--negative-rest", action="store_true",
                   help="every recorded value not named positive is negative")  # fmt: skip


def _recipe_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", choices=tuple(PRESETS), default="cpu-fast", help="base recipe")
    p.add_argument("--config", help="a TrainConfig JSON file (instead of the preset)")
    p.add_argument(
        "--rounds",
        type=int,
        help="fine-tuning rounds (one local epoch each; the one-cycle schedule and the "
        "unfreezing follow them; default: the recipe's fine-tuning epochs)",
    )
    p.add_argument(
        "--probe-rounds",
        type=int,
        help=f"linear-probe rounds before them (default {DEFAULT_PROBE_ROUNDS}; "
        "every round costs seconds of Flower messaging)",
    )
    p.add_argument("--folds", type=int, help="patient-level folds inside each site")
    p.add_argument("--resolution", type=int, help="image side in pixels")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--init", choices=INITS, help="backbone initialisation")
    p.add_argument("--seed", type=int)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _stop_on_sigterm() -> None:
    """SIGTERM ends the command through its cleanup (the Flower processes it started
    are ended too), as Ctrl-C does."""

    def handler(signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _say(args: argparse.Namespace):
    return (lambda _m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))


def outcome_from_args(args: argparse.Namespace) -> OutcomeSpec:
    from core.cohort.source import OutcomeSpec

    return OutcomeSpec(args.outcome, tuple(args.positive), tuple(args.negative or ()),
                       bool(args.negative_rest))  # fmt: skip


def cohort_source(
    table: str, images_root: str | None, outcome: OutcomeSpec, crops: str | None = None
) -> CohortSource:
    """A site's cohort as `bpd train TABLE --images-root DIR --outcome ... [--crops FILE]`
    reads it."""
    from core.cohort.source import CohortSource

    if not Path(table).is_file():
        raise InputError("site table not found", file=table)
    if crops and not Path(crops).is_file():
        raise InputError("site crop table not found", file=crops)
    root = str(Path(images_root).resolve()) if images_root else None
    boxes = str(Path(crops).resolve()) if crops else None
    return CohortSource(str(Path(table).resolve()), outcome, images_root=root, crops=boxes)


def parse_site(text: str, images_root: str | None, outcome: OutcomeSpec, crops=None):
    """NAME=TABLE -> SiteSource; `crops`: sidecar files by site name (--site-crops)."""
    from core.federated.simulate import SiteSource

    name, sep, table = text.partition("=")
    if not sep or not name or not table:
        raise InputError(f"--site {text!r}: write NAME=TABLE, e.g. --site north=north/cohort.csv")
    mine = (crops or {}).get(name.strip())
    return SiteSource(name.strip(), cohort_source(table, images_root, outcome, mine))


def parse_site_crops(texts: list[str], sites: list[str]) -> dict[str, str]:
    """--site-crops NAME=FILE, each naming one of the --site names once."""
    names = [s.partition("=")[0].strip() for s in sites]
    out: dict[str, str] = {}
    for text in texts:
        name, sep, file = (part.strip() for part in text.partition("="))
        if not sep or not name or not file:
            raise InputError(f"--site-crops {text!r}: write NAME=FILE, e.g. "
                             "--site-crops north=north/cohort.csv.crops.csv")  # fmt: skip
        if name not in names:
            raise InputError(f"--site-crops {text!r}: no --site is called {name!r} "
                             f"(sites: {', '.join(names)})")  # fmt: skip
        if name in out:
            raise InputError(f"--site-crops: site {name!r} is given two crop tables")
        out[name] = file
    return out


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The federation's recipe: --config (a TrainConfig JSON, or a RunConfig JSON whose
    recipe is taken) or the preset with DEFAULT_PROBE_ROUNDS, then the flags, as
    `bpd train` applies them (core.cli.train_options); one set of folds per site."""
    from core.cli.train_options import FLAG_FIELDS, train_config_from_args
    from core.runs.run_config import RunConfig, read_config_file

    if args.config:
        loaded = read_config_file(args.config)
        cfg = loaded.train if isinstance(loaded, RunConfig) else loaded
    else:
        cfg = preset(args.preset).replace(probe_epochs=DEFAULT_PROBE_ROUNDS)
    flags = argparse.Namespace(**dict.fromkeys(FLAG_FIELDS), cutmix=None)
    flags.epochs, flags.probe_epochs, flags.folds = args.rounds, args.probe_rounds, args.folds
    flags.resolution, flags.batch_size = args.resolution, args.batch_size
    flags.init, flags.seed = args.init, args.seed
    return train_config_from_args(cfg, flags).replace(cv_repeats=1)


def run_simulate(args: argparse.Namespace) -> int:
    from core.federated import require_flwr

    require_flwr()
    _stop_on_sigterm()
    from core.federated.results import table_markdown
    from core.federated.simulate import simulate
    from core.runs.folder import default_run_dir

    outcome = outcome_from_args(args)
    crops = parse_site_crops(args.site_crops, args.site)
    sources = [parse_site(s, args.images_root, outcome, crops) for s in args.site]
    compare = tuple(c for c in args.compare.split(",") if c and c != "none")
    cfg = config_from_args(args)
    if args.proximal_mu < 0:
        raise InputError(f"--proximal-mu must be >= 0, got {args.proximal_mu}")
    out = Path(args.out) if args.out else default_run_dir("federated")
    say = _say(args)
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
    _write_report(out)
    return 0


def _write_report(run_dir: Path) -> None:
    """report.html beside the results, as `bpd train` writes one; a failed report never
    fails the finished federation."""
    from core.federated.report import write_federated_report

    try:
        path = write_federated_report(run_dir)
    except Exception as exc:
        print(f"warning: the report could not be written: {exc}", file=sys.stderr)
        return
    print(f"report: {path}")


def run_serve(args: argparse.Namespace) -> int:
    from core.federated import require_flwr

    require_flwr()
    _stop_on_sigterm()
    from core.federated.network import ServerCertificates, serve
    from core.federated.results import table_markdown
    from core.runs.folder import default_run_dir

    cfg = config_from_args(args)
    out = Path(args.out) if args.out else default_run_dir("federated")
    say = _say(args)
    say(f"run folder: {out}")
    summary = serve(
        cfg,
        certs=ServerCertificates.from_folder(args.certs),
        site_keys=[Path(k) for k in args.site_key],
        out=out,
        host=args.host,
        port=args.port,
        loso=not args.no_loso,
        proximal_mu=args.proximal_mu,
        wait_s=args.wait,
        say=say,
    )
    print(f"run folder: {out}")
    print(table_markdown(summary["federated"]["table"]))
    _write_report(out)
    return 0


def run_join(args: argparse.Namespace) -> int:
    from core.federated import require_flwr

    require_flwr()
    _stop_on_sigterm()
    from core import paths
    from core.federated.network import join

    source = cohort_source(args.table, args.images_root, outcome_from_args(args), args.crops)
    work = Path(args.work_dir) if args.work_dir else paths.runs_dir() / f"site-{args.site}"
    return join(
        args.site,
        source,
        server=args.server,
        ca_cert=Path(args.ca_cert),
        site_key=Path(args.site_key),
        work_dir=work,
        threads=args.threads,
        runtime_port=args.runtime_port,
        say=_say(args),
    )
