"""The Flower ClientApp: what a SuperNode runs at a site for each message.

The SuperNode's node config says where the site's own run folder is (`site-dir`: its
cohort source and the state of its trainings) and optionally `threads`/`device`; it never
leaves the site. The recipe comes from the run config, the same for every site. Replies
carry only exchanged weights (core.federated.exchange), patient counts and metrics.
"""

from __future__ import annotations

import contextlib
import json
import logging

from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from core.errors import InputError
from core.federated.wire import from_record, to_record

log = logging.getLogger(__name__)
app = ClientApp()


def _site(context: Context):
    # torch loads here, not at import: `describe` answers without it
    from core.federated.site import Site, site_train_config

    node = context.node_config
    cfg = site_train_config(
        json.loads(str(context.run_config["recipe"])),
        threads=int(node.get("threads", 0)),
        device=str(node.get("device", "")),
    )
    return Site.load(str(node["site-dir"]), cfg)


@app.query()
def describe(msg: Message, context: Context) -> Message:
    """The site's name and counts: what the server needs to plan the jobs; and how the
    site cuts its images (a method in words and a count of boxes, core.federated.crops)."""
    from core.federated.crops import site_crops
    from core.runs.folder import RunFolder

    run = RunFolder.existing(str(context.node_config["site-dir"]))
    cohort = run.cohort().get("summary", {})
    recipe = json.loads(str(context.run_config["recipe"]))
    n_folds = int(recipe["cv_folds"])
    smaller = min(int(cohort["n_positive"]), int(cohort["n_patients"]) - int(cohort["n_positive"]))
    if smaller < n_folds:  # refuse before any round: the server shows this reason
        raise InputError(
            f"{n_folds} folds inside the site need {n_folds} patients of each outcome; "
            f"this site has {smaller} of the rarer one"
        )
    counts = {
        "n-patients": int(cohort["n_patients"]),
        "n-positive": int(cohort["n_positive"]),
        "n-folds": n_folds,
    }
    method, boxes = site_crops(run)
    counts["crop-boxes"] = boxes
    content = RecordDict(
        {
            "site": ConfigRecord({"name": str(run.config()["site"]["name"]), "crops": method}),
            "counts": MetricRecord(counts),
        }
    )
    return Message(content, reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    """One round of every job this site takes part in."""
    site = _site(context)
    config = msg.content["config"]
    round_index = int(config["round"])
    mu = float(config.get("proximal-mu", 0.0))
    records: dict = {}
    with _locked(site):
        for job in str(config["jobs"]).split(","):
            incoming = from_record(msg.content.array_records.get(job))
            arrays, n_patients, loss = site.train_round(job, round_index, incoming, mu)
            records[job] = to_record(arrays)
            records[f"{job}.metrics"] = MetricRecord(
                {"num-patients": n_patients, "train-loss": loss}
            )
    return Message(RecordDict(records), reply_to=msg)


@contextlib.contextmanager
def _locked(site):
    """One process writes a site's folder at a time, as `bpd train` holds its run's lock
    (core.runs.lock): a second SuperNode or a `bpd resume` on the same folder is refused
    (the server shows the reason). Holding it, the temp files of a write an earlier
    ClientApp process did not finish (killed) are garbage and go."""
    with site.run.lock():
        site.run.remove_stale_temp_files()
        yield


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Scores of the final models on this site's held-out patients, per fold."""
    site = _site(context)
    config = msg.content["config"]
    records: dict = {}
    with _locked(site):
        for job in [j for j in str(config["jobs"]).split(",") if j]:
            incoming = from_record(msg.content.array_records.get(job))
            kind, _ = job.split("-", 1)
            if kind == "fed":
                records[job] = MetricRecord(_numbers(site.score_fed(job, incoming)))
            else:
                for k, metrics in enumerate(site.score_left_out(job, incoming)):
                    records[f"{job}-f{k}"] = MetricRecord(_numbers(metrics))
        for job in [j for j in str(config.get("finished", "")).split(",") if j]:
            site.run.fold(job).remove_checkpoint()  # a left-out site's training: over
    return Message(RecordDict(records), reply_to=msg)


def _numbers(metrics: dict[str, float]) -> dict[str, float]:
    # NaN (e.g. AUROC of a one-class fold) travels as NaN; the server writes null
    return {k: float(v) for k, v in metrics.items()}
