"""A site's side of the federation: its data, its folds, one round of one job, scoring.

Everything here runs at the site. A round restores the job's local state (the model with
its BatchNorm, both optimizers with their moments, the one-cycle schedule, RNG streams)
from the site's own folder, loads the server's weights over the exchanged parameters,
runs one epoch of the plan with the same engine a site uses alone (FoldTrainer), and
saves the state again: Flower starts a fresh ClientApp process for every message, so the
state between rounds lives on the site's disk, never on the server.
"""

from __future__ import annotations

import copy
import logging
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.cohort.source import CohortSource
from core.errors import InputError, RunError
from core.federated.exchange import ProximalTerm, apply_incoming, exchanged_keys, outgoing
from core.federated.jobs import parse_job
from core.models.layout import plain_state
from core.runs.folder import RunFolder
from core.scoring.metrics import binary_metrics
from core.training import schedule as sch
from core.training.config import TrainConfig
from core.training.data import TrainingData
from core.training.features import recalibrate_bn
from core.training.folds import Fold, make_folds
from core.training.loop import FoldTrainer
from core.training.runtime import Runtime, resolve_runtime

log = logging.getLogger(__name__)
SITE_NAME = re.compile(r"^[A-Za-z0-9_]{1,40}$")
LOSO_FOLD_BASE = 1000  # fold numbers of loso trainings (their own RNG streams)


def check_site_name(name: str) -> str:
    if not SITE_NAME.match(name):
        raise InputError(
            f"site name {name!r}: use 1-40 letters, digits or underscores "
            "(it names the site's folder and crosses the network)"
        )
    return name


def site_config(
    name: str, index: int, source: CohortSource, cfg: TrainConfig | None
) -> dict[str, Any]:
    """config.json of a site's own run folder: how it reads its cohort (this stays at
    the site) and, in a simulation, the recipe it was given (a real site gets the recipe
    with every run). With a recipe it is a whole RunConfig's JSON (plus "site"), so
    RunFolder.run_config() reads a simulated site's folder like any run's. The boxes of
    the site's crop sidecar (source.crops) are frozen into it ("crops"), as a run's are."""
    from core.runs.run_config import RunConfig

    site = {"site": {"name": name, "index": index}}
    if cfg is None:
        if source.outcome is None:
            raise InputError("a site needs an outcome column and its positive values")
        source.outcome.require_complete(source.table)
        crops = {"crops": source.crop_table().used().to_json()} if source.crops else {}
        return {**site, "cohort_source": source.to_json(), **crops}
    return {**site, **RunConfig(cfg, source).with_crops().to_json()}


def site_train_config(recipe: dict[str, Any], threads: int = 0, device: str = "") -> TrainConfig:
    """The server's recipe, with this site's own hardware settings."""
    cfg = TrainConfig.from_json(recipe)
    changes: dict[str, Any] = {"eval_every_epoch": False, "checkpoint_every_s": 0.0}
    if threads:
        changes["num_threads"] = int(threads)
    if device:
        changes["device"] = device
    return cfg.replace(**changes)


def site_folds(labels: np.ndarray, cfg: TrainConfig) -> list[Fold]:
    """Patient-level folds inside one site (one repeat): the same at the site and in a
    simulation's local-only and pooled comparisons."""
    return make_folds(labels, cfg.cv_folds, 1, cfg.seed, cfg.cv_scheme)


@dataclass
class Site:
    name: str
    index: int
    run: RunFolder  # the site's own folder
    data: TrainingData
    cfg: TrainConfig
    runtime: Runtime
    folds: list[Fold]
    _start: torch.nn.Module | None = None

    @classmethod
    def load(cls, site_dir: str, cfg: TrainConfig) -> Site:
        from core.cohort.loader import load_recorded_cohort
        from core.cohort.prepare import prepare_images
        from core.cohort.preprocess import PreprocessConfig

        # existing(), not open(): open() deletes temp files, and another process may be
        # writing this folder; the caller holds the site's lock while it trains (`lock`)
        run = RunFolder.existing(site_dir)
        config = run.config()
        info = config["site"]
        cohort = load_recorded_cohort(run.cohort_source(config))
        # cut with the boxes frozen in the site's folder (none recorded: whole images)
        prepared = prepare_images(
            cohort, PreprocessConfig(resolution=cfg.resolution), crops=run.crops(config)
        )
        data = TrainingData.from_prepared(prepared)
        runtime = resolve_runtime(cfg)
        torch.use_deterministic_algorithms(runtime.device.type == "cpu", warn_only=True)
        folds = site_folds(data.labels, cfg)
        return cls(info["name"], int(info["index"]), run, data, cfg, runtime, folds)

    def counts(self) -> dict[str, int]:
        return {
            "n-patients": len(self.data.labels),
            "n-positive": int(self.data.labels.sum()),
            "n-folds": len(self.folds),
        }

    # ----- the fold a job trains on --------------------------------------------------------
    def job_fold(self, job: str) -> Fold:
        kind, arg = parse_job(job)
        if kind == "fed":
            k = int(arg)
            if k >= len(self.folds):
                raise RunError(
                    f"site {self.name}: the server asks for fold {k}, it has {len(self.folds)}"
                )
            f = self.folds[k]
            return Fold(self.index, k, f.train, f.test)
        everyone = np.arange(len(self.data.labels))
        return Fold(self.index, LOSO_FOLD_BASE, everyone, np.array([], dtype=np.int64))

    def starting_model(self) -> torch.nn.Module:
        """The federation's starting model, the same at every site (one seed); built once
        per message (a ResNet-50 takes seconds to initialise) and copied per job."""
        if self._start is None:
            from core.models.registry import create_model

            self._start = create_model(self.cfg.init, dropout=self.cfg.dropout, seed=self.cfg.seed)
        return copy.deepcopy(self._start)

    def trainer(self, job: str, fold: Fold | None = None) -> FoldTrainer:
        return FoldTrainer(
            self.data,
            fold or self.job_fold(job),
            self.cfg,
            self.runtime,
            self.starting_model(),
            emit=_quiet,
            checkpoints=self.run.fold(job),
        )

    # ----- one round ----------------------------------------------------------------------
    def train_round(
        self, job: str, round_index: int, incoming: dict[str, np.ndarray], mu: float
    ) -> tuple[dict[str, np.ndarray], int, float]:
        """One epoch of the job's plan from the server's weights; returns the weights to
        send, the number of training patients (the FedAvg weight) and the mean loss."""
        t = self.trainer(job)
        if round_index >= len(t.plans):
            raise RunError(
                f"site {self.name}: round {round_index} is past the plan's {len(t.plans)}"
            )
        start = t._restore()
        if start != round_index:
            raise RunError(
                f"site {self.name}, {job}: the server asks for round {round_index + 1} but "
                f"this site's state is after round {start}"
            )
        if start == 0:
            torch.manual_seed(t.seed)  # as FoldTrainer.train_epochs does for a new fold
        apply_incoming(t.model, incoming)
        plan = t.plans[round_index]
        sch.apply_freezing(t.model, plan)
        scale = t.scaler.get_scale if t.scaler.is_enabled() else (lambda: 1.0)
        prox = ProximalTerm(t.model, exchanged_keys(t.model, plan.trainable), mu, scale)
        try:
            t._run_epoch(plan)
        finally:
            prox.remove()
        t._checkpoint(plan)
        return (
            outgoing(t.model, plan.trainable),
            len(t.fold.train),
            float(t.history[-1]["train_loss"]),
        )

    # ----- scoring ------------------------------------------------------------------------
    def score_fed(self, job: str, incoming: dict[str, np.ndarray]) -> dict[str, float]:
        """The federated model with this site's own BatchNorm, on its held-out patients."""
        t = self.trainer(job)
        if t._restore() != len(t.plans):
            raise RunError(f"site {self.name}, {job}: scoring before the last round finished")
        apply_incoming(t.model, incoming)
        metrics = self._score(t, job)
        folder = self.run.fold(job)
        folder.save_model(plain_state(t.model))
        folder.remove_checkpoint()
        return metrics

    def score_left_out(self, job: str, incoming: dict[str, np.ndarray]) -> list[dict[str, float]]:
        """A model this site never trained: per fold, BatchNorm statistics re-estimated
        on the fold's training images (the starting model's BatchNorm weights), then the
        fold's test patients scored."""
        out = []
        for k, f in enumerate(self.folds):
            fold_job = f"{job}-f{k}"
            t = self.trainer(fold_job, Fold(self.index, k, f.train, f.test))
            apply_incoming(t.model, incoming)
            batches = t._batches(t.train_idx, self.cfg.batch_size)
            recalibrate_bn(t.model, batches, self.runtime.autocast, lambda n: None)
            out.append(self._score(t, fold_job))
        return out

    def _score(self, t: FoldTrainer, fold_job: str) -> dict[str, float]:
        probs, logits = t._predict(t.test_idx)
        patients, labels, p_probs, p_logits = t._per_patient(t.test_idx, probs, logits)
        metrics = binary_metrics(labels, p_probs, self.cfg.threshold)
        rows = [
            {
                "patient_id": self.data.patient_ids[int(p)],
                "label": int(y),
                "prob": float(pr),
                "logit": float(lg),
                "repeat": 0,
                "fold": t.fold.fold,
            }
            for p, y, pr, lg in zip(patients, labels, p_probs, p_logits, strict=True)
        ]
        folder = self.run.fold(fold_job)
        folder.write_predictions(rows)  # stays at the site, like the images
        folder.write({"fold_id": fold_job, "metrics": _plain(metrics), "finished": True})
        return {**metrics, "n-test": float(len(labels)), "n-test-positive": float(labels.sum())}


def _plain(metrics: dict[str, float]) -> dict[str, float | None]:
    return {k: (None if v is None or np.isnan(v) else float(v)) for k, v in metrics.items()}


def _quiet(*_args: Any, **_fields: Any) -> None:
    """Round events stay at the site; the server logs rounds itself."""
