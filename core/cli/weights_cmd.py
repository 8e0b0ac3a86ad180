"""`bpd weights import FILE --init xrv|imagenet` and `bpd weights status`.

Offline sites download the pretrained file elsewhere and import it here; the file is
checked (loads strictly into the architecture, tensors only) before it is used.
"""

from __future__ import annotations

import argparse
import json

# weights (and torch) load only when a weights command runs: `bpd --help` stays fast.
PRETRAINED_INITS = ("xrv", "imagenet")


def _import(args: argparse.Namespace) -> int:
    from core.models import weights

    dest = weights.import_weights(args.file, args.init, weights_dir=args.weights_dir)
    print(f"imported {args.init} weights: {dest}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from core.models import weights

    rows = weights.weights_status(args.weights_dir)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        state = "present" if row["present"] else "missing"
        print(f"{row['init']:<9} {state:<8} {row['path']}")
        if not row["present"]:
            print(f"{'':<18} from {row['url']}")
            print(f"{'':<18} or: bpd weights import FILE --init {row['init']}")
    print(f"{'random':<9} {'built-in':<8} (no file needed)")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("weights", help="pretrained backbone weights (offline import)")
    sub = parser.add_subparsers(dest="weights_command", metavar="ACTION", required=True)

    imp = sub.add_parser("import", help="check a weights file and copy it into the cache")
    imp.add_argument("file", help="a state_dict file (e.g. pc-nih-...-state.pt)")
    imp.add_argument("--init", required=True, choices=PRETRAINED_INITS)
    imp.add_argument("--weights-dir", default=None, help="default: BPD_STUDIO_HOME/weights")
    imp.set_defaults(func=_import)

    status = sub.add_parser("status", help="which pretrained weights are on this machine")
    status.add_argument("--weights-dir", default=None, help="default: BPD_STUDIO_HOME/weights")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=_status)
