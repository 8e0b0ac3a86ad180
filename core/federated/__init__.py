"""Federated fine-tuning: several sites train one model while each keeps its images.

The engine is Flower (the optional extra `bpd-studio[federated]`): a SuperLink (the
server) and one SuperNode per site; the ServerApp (server_app.py) drives rounds, the
ClientApp (client_app.py) runs one round of the site's own recipe with the existing
training engine (core.training). What crosses the network: the non-BatchNorm weights of
the groups that train in a round, counts of patients, and per-fold metrics.
"""

from __future__ import annotations

import sys

from core.errors import InputError

FLWR_VERSION = "1.42.0"


def require_flwr() -> None:
    """Flower is an optional extra; say how to get it instead of an ImportError."""
    try:
        import flwr  # noqa: F401
    except ImportError:
        if getattr(sys, "frozen", False):  # the bundle leaves Flower out (docs/packaging.md)
            raise InputError(
                "federated training is not in this installed bundle: the server and each "
                "site run it from a pip install of BPD Studio with the federated extra "
                f"(pip install 'bpd-studio[federated]', Flower {FLWR_VERSION}); "
                "see docs/federated.md"
            ) from None
        raise InputError(
            "federated training needs Flower, an optional extra: "
            "pip install 'bpd-studio[federated]' "
            f"(or pip install flwr=={FLWR_VERSION})"
        ) from None
