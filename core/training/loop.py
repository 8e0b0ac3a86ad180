"""Training one cross-validation fold: a plain loop that reports through `emit`.

Per epoch it follows the schedule (core.training.schedule). Epochs that train only the
head run the backbone under no_grad (no backbone backward pass). A probe without input
augmentation and without CutMix trains on features computed once per image
(core.training.features).

After a finished epoch a checkpoint (model, optimizer, scheduler, RNG states, history)
goes to `checkpoints.save` when the last one is at least `cfg.checkpoint_every_s` old;
a cancelled or killed fold resumes from it and continues exactly as an uninterrupted
one would (same RNG streams), losing at most the epochs since.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from core.errors import Cancelled
from core.models.layout import plain_state, weights_in
from core.scoring.metrics import auroc, binary_metrics
from core.training import schedule as sch
from core.training.augment import augment_batch, cutmix, mixed_bce
from core.training.config import TrainConfig
from core.training.data import TrainingData
from core.training.estimate import fold_work
from core.training.fastpath import FastForward, wants_gemm_1x1
from core.training.features import extract_features, recalibrate_bn, uses_feature_cache
from core.training.folds import Fold, fold_seed, scored_images, training_images
from core.training.plan import steps_per_epoch
from core.training.runtime import CancelToken, Progress, Runtime

Emit = Callable[..., Any]


class CheckpointStore(Protocol):
    def load(self) -> dict[str, Any] | None: ...
    def save(self, state: dict[str, Any]) -> None: ...


@dataclass
class FoldResult:
    fold: Fold
    patient_index: np.ndarray  # test patients (indices into the cohort)
    labels: np.ndarray
    probs: np.ndarray
    logits: np.ndarray
    metrics: dict[str, float]
    history: list[dict[str, Any]] = field(default_factory=list)
    model_state: dict[str, torch.Tensor] = field(default_factory=dict)


class FoldTrainer:
    def __init__(
        self,
        data: TrainingData,
        fold: Fold,
        cfg: TrainConfig,
        runtime: Runtime,
        model: nn.Module,
        *,
        emit: Emit,
        cancel: CancelToken | None = None,
        checkpoints: CheckpointStore | None = None,
        progress: Progress | None = None,
        fold_id: str | None = None,
    ):
        """`fold_id`: the id its events carry (default the fold's own, "r<R>-f<F>")."""
        self.data, self.fold, self.cfg, self.rt = data, fold, cfg, runtime
        self.emit = emit
        self.cancel = cancel or CancelToken()
        self.checkpoints = checkpoints
        self.progress = progress or Progress(fold_work(cfg, 1, 1))
        self.fold_id = fold_id or fold.fold_id
        self.seed = fold_seed(cfg.seed, fold.repeat, fold.fold)
        self.train_idx = training_images(data.image_patient, fold.train)
        self.test_idx = scored_images(
            data.image_patient, data.image_rank, fold.test, cfg.test_images
        )
        self.plans = sch.fold_plan(cfg)
        self.model = model.to(runtime.device)
        if runtime.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.fast = FastForward(
            self.model,
            gemm_1x1=wants_gemm_1x1(runtime.device, runtime.channels_last),
            fold_frozen_bn=not cfg.frozen_bn_train_mode,
        )
        self.gen = torch.Generator().manual_seed(self.seed)
        self.history: list[dict[str, Any]] = []
        self._last_checkpoint = time.monotonic()
        self.n_steps = steps_per_epoch(len(self.train_idx), cfg.batch_size)
        self.probe_opt: torch.optim.Optimizer | None = None
        self.ft_opt: torch.optim.Optimizer | None = None
        self.ft_sched: torch.optim.lr_scheduler.OneCycleLR | None = None
        self.scaler = torch.amp.GradScaler("cuda", enabled=runtime.precision == "fp16")
        self.features: torch.Tensor | None = None  # cached probe features, all images
        y_img = data.labels[data.image_patient[self.train_idx]].astype(np.float64)
        n_pos, n_neg = float(y_img.sum()), float(len(y_img) - y_img.sum())
        self.sample_weights = torch.as_tensor(
            np.where(y_img == 1, 1.0 / max(n_pos, 1.0), 1.0 / max(n_neg, 1.0))
        )
        self.pos_weight = (
            torch.tensor(n_neg / max(n_pos, 1.0), device=runtime.device)
            if cfg.balance == "pos_weight"
            else None
        )

    # ----- inputs --------------------------------------------------------------------
    def _images(self, idx: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = self.data.model_input(np.asarray(idx), self.rt.device)
        if self.rt.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _labels(self, idx: np.ndarray | torch.Tensor) -> torch.Tensor:
        y = self.data.labels[self.data.image_patient[np.asarray(idx)]]
        return torch.as_tensor(y, dtype=torch.float32, device=self.rt.device)

    def _epoch_order(self) -> torch.Tensor:
        """Training image positions for one epoch (n_steps full batches)."""
        n = self.n_steps * self.cfg.batch_size
        if self.cfg.balance == "sampler":
            pick = torch.multinomial(self.sample_weights, n, replacement=True, generator=self.gen)
        else:
            reps = -(-n // len(self.train_idx))
            pick = torch.cat(
                [torch.randperm(len(self.train_idx), generator=self.gen) for _ in range(reps)]
            )[:n]
        return torch.as_tensor(self.train_idx)[pick]

    # ----- the fold --------------------------------------------------------------------
    def run(self) -> FoldResult:
        self.train_epochs()
        probs, logits = self._predict(self.test_idx)
        patients, labels, p_probs, p_logits = self._per_patient(self.test_idx, probs, logits)
        metrics = binary_metrics(labels, p_probs, self.cfg.threshold)
        state = plain_state(self.model)
        return FoldResult(
            self.fold, patients, labels, p_probs, p_logits, metrics, self.history, state
        )

    def train_epochs(self) -> None:
        """Every epoch of the plan, continuing from a checkpoint if there is one."""
        start_epoch = self._restore()
        if start_epoch == 0:
            torch.manual_seed(self.seed)  # dropout's stream; restored from checkpoints
        for plan in self.plans[start_epoch:]:
            self._run_epoch(plan)

    def _restore(self) -> int:
        state = self.checkpoints.load() if self.checkpoints else None
        if not state:
            return 0
        self.model.load_state_dict(state["model"])
        self.history = list(state["history"])
        epoch = int(state["epoch"]) + 1
        if state.get("probe_optimizer"):
            self._probe_optimizer().load_state_dict(state["probe_optimizer"])
        if state.get("optimizer"):
            self._finetune_optimizer()
            self.ft_opt.load_state_dict(state["optimizer"])
            self.ft_sched.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.gen.set_state(state["rng_generator"])
        torch.set_rng_state(state["rng_torch"])
        done = sum(h.get("work", 0.0) for h in self.history)
        self.progress.advance(done)
        return epoch

    def _worth_checkpointing(self, plan: sch.EpochPlan) -> bool:
        """After an epoch when the last checkpoint is `checkpoint_every_s` old. Never
        after the fold's last epoch (its model.pt follows within seconds) nor after a
        probe epoch on cached features before the last one (it takes milliseconds, and
        redoing the probe after a kill gives the same result)."""
        following = self.plans[plan.epoch + 1] if plan.epoch + 1 < len(self.plans) else None
        if following is None:
            return False
        if plan.stage == "probe" and self.features is not None and following.stage == "probe":
            return False
        return time.monotonic() - self._last_checkpoint >= self.cfg.checkpoint_every_s

    def _checkpoint(self, plan: sch.EpochPlan) -> None:
        self._last_checkpoint = time.monotonic()
        if not self.checkpoints:
            return
        model_state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        self.checkpoints.save(
            {
                "epoch": plan.epoch,
                "model": model_state,
                "probe_optimizer": self.probe_opt.state_dict() if self.probe_opt else {},
                "optimizer": self.ft_opt.state_dict() if self.ft_opt else {},
                "scheduler": self.ft_sched.state_dict() if self.ft_sched else {},
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
                "rng_generator": self.gen.get_state(),
                "rng_torch": torch.get_rng_state(),
                "history": self.history,
            }
        )

    def _probe_optimizer(self) -> torch.optim.Optimizer:
        if self.probe_opt is None:
            self.probe_opt = sch.make_probe_optimizer(self.model, self.cfg)
        return self.probe_opt

    def _finetune_optimizer(self) -> None:
        if self.ft_opt is None:
            self.ft_opt, self.ft_sched = sch.make_finetune_optimizer(
                self.model, self.cfg, self.n_steps
            )

    def _check_cancel(self) -> None:
        if self.cancel.cancelled:
            raise Cancelled(self.cancel.reason)

    def _run_epoch(self, plan: sch.EpochPlan) -> None:
        t0 = time.monotonic()
        work0 = self.progress.done
        n_epochs = len(self.plans)
        self.emit(
            "epoch_started",
            fold_id=self.fold_id,
            epoch=plan.epoch,
            n_epochs=n_epochs,
            phase=plan.phase,
        )
        sch.apply_freezing(self.model, plan)
        if plan.stage == "probe":
            optimizer = self._probe_optimizer()
            if uses_feature_cache(self.cfg):
                loss = self._probe_epoch_cached(plan, optimizer)
            else:
                loss = self._image_epoch(plan, optimizer, None)
            lrs = sch.current_lrs(optimizer)
        else:
            self._finetune_optimizer()
            sch.begin_epoch_lrs(self.ft_opt, self.ft_sched, plan)
            loss = self._image_epoch(plan, self.ft_opt, self.ft_sched)
            lrs = sch.current_lrs(self.ft_opt)
        last = plan.epoch == n_epochs - 1
        test_auroc = None
        if self.cfg.eval_every_epoch and not last:
            cached = plan.stage == "probe" and self.features is not None
            # monitoring only: in the training precision (the final score is fp32)
            probs, logits = self._predict(self.test_idx, cached, exact=False)
            _, labels, p_probs, _ = self._per_patient(self.test_idx, probs, logits)
            value = auroc(labels, p_probs)
            test_auroc = None if np.isnan(value) else value
        record = {
            "epoch": plan.epoch,
            "phase": plan.phase,
            "train_loss": loss,
            "test_auroc": test_auroc,
            "lrs": lrs,
            "seconds": round(time.monotonic() - t0, 3),
            "work": self.progress.done - work0,
        }
        self.history.append(record)
        if self._worth_checkpointing(plan):
            self._checkpoint(plan)
        self.emit(
            "epoch_finished",
            fold_id=self.fold_id,
            epoch=plan.epoch,
            n_epochs=n_epochs,
            phase=plan.phase,
            train_loss=loss,
            test_auroc=test_auroc,
            lrs=lrs,
            seconds=record["seconds"],
        )
        self._emit_progress(force=True)

    def _emit_progress(self, force: bool = False) -> None:
        if self.progress.due(force):
            self.emit("progress", **self.progress.fields())

    def _image_epoch(self, plan: sch.EpochPlan, optimizer, scheduler) -> float:
        cfg = self.cfg
        self.begin_image_epoch(plan)
        order = self._epoch_order()
        unit = cfg.batch_size * (1.0 if plan.head_only else 1.0 + sch.BACKWARD_COST)
        losses = []
        for b in range(self.n_steps):
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size].numpy()
            losses.append(self.train_step(plan, idx, optimizer, scheduler))
            self.progress.advance(unit)
            self._emit_batch(plan, b, losses[-1])
            self._check_cancel()
        return float(np.mean(losses))

    def begin_image_epoch(self, plan: sch.EpochPlan) -> None:
        """Train/eval modes of the epoch, then the fast forward for its frozen prefix."""
        sch.set_train_modes(self.model, plan, self.cfg)
        blocks = tuple(b for b in plan.trainable if b.startswith("layer"))
        self.fast.prepare(blocks, whole_backbone="backbone" in plan.trainable)

    def train_step(self, plan: sch.EpochPlan, idx: np.ndarray, optimizer, scheduler) -> float:
        """One optimizer step on training images idx (augmentation, CutMix, precision
        and schedule as the plan says); returns the batch loss."""
        cfg = self.cfg
        cut_cfg = cfg.cutmix_probe if plan.stage == "probe" else cfg.cutmix_finetune
        x, y = self._images(idx), self._labels(idx)
        if plan.stage == "finetune" or cfg.probe_augment:
            x = augment_batch(x, cfg.augment, self.gen)
            if self.rt.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
        x, y_a, y_b, lam = cutmix(x, y, cut_cfg, self.gen)
        with self.rt.autocast():
            if plan.head_only:
                with torch.no_grad():
                    feats = self.fast.forward_features(x)
                logits = self.model.forward_head(feats.float())
            else:
                logits = self.model.forward_head(self.fast.forward_features(x))
        loss = mixed_bce(logits.float(), y_a, y_b, lam, self.pos_weight)
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()
        if scheduler is not None:
            scheduler.step()
            sch.mask_frozen_lrs(optimizer, plan)
        return float(loss.detach())

    def _emit_batch(self, plan: sch.EpochPlan, batch: int, loss: float) -> None:
        if self.progress.due():
            self.emit(
                "batch",
                fold_id=self.fold_id,
                epoch=plan.epoch,
                batch=batch,
                n_batches=self.n_steps,
                loss=loss,
            )
            self.emit("progress", **self.progress.fields())

    # ----- the probe on cached features ------------------------------------------------
    def _probe_epoch_cached(self, plan: sch.EpochPlan, optimizer) -> float:
        if self.features is None:
            self._cache_features(recalibrate=plan.stage_epoch == 0)
        self.model.head.train()
        order = self._epoch_order()
        losses = []
        for b in range(self.n_steps):
            idx = order[b * self.cfg.batch_size : (b + 1) * self.cfg.batch_size]
            feats = self.features[idx].to(self.rt.device)
            y = self._labels(idx.numpy())
            logits = self.model.forward_head(feats)
            loss = mixed_bce(logits, y, y, 1.0, self.pos_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            self._check_cancel()
        return float(np.mean(losses))

    def _batches(self, idx: np.ndarray, size: int):
        for s in range(0, len(idx), size):
            part = idx[s : s + size]
            yield part, self._images(part)

    def _after_feature_batch(self, n: int) -> None:
        self.progress.advance(n)
        self._emit_progress()
        self._check_cancel()

    def _cache_features(self, recalibrate: bool) -> None:
        if recalibrate and self.cfg.frozen_bn_train_mode:
            batches = self._batches(self.train_idx, self.cfg.batch_size)
            recalibrate_bn(self.model, batches, self.rt.autocast, self._after_feature_batch)
        needed = np.union1d(self.train_idx, self.test_idx)
        batches = self._batches(needed, max(32, self.cfg.batch_size))
        self.features = extract_features(
            self.model, batches, self.data.n_images, self.rt.autocast, self._after_feature_batch
        )

    # ----- scoring ---------------------------------------------------------------------
    @torch.no_grad()
    def _predict(
        self, idx: np.ndarray, cached: bool = False, exact: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and logits of images idx (eval mode; from cached features
        while the backbone is the one the cache was computed with)."""
        self.model.eval()
        if cached:
            logits = self.model.forward_head(self.features[torch.as_tensor(idx)].to(self.rt.device))
            logits = logits.float().cpu().numpy().astype(np.float64)
            return 1.0 / (1.0 + np.exp(-logits)), logits
        # Scores are computed in fp32 whatever the training precision: bf16 can move a
        # small model's probability by tenths, and `bpd predict`/`bpd explain` must
        # reproduce exactly what the cross-validation reported. So also in their layout
        # (NCHW): channels_last runs other kernels, 3e-5 apart. Scoring is cheap.
        layout = (
            weights_in(self.model, torch.contiguous_format) if exact else contextlib.nullcontext()
        )
        out = []
        step = max(32, self.cfg.batch_size)
        with layout:
            for s in range(0, len(idx), step):
                part = idx[s : s + step]
                x = self._images(part)
                with torch.no_grad(), contextlib.nullcontext() if exact else self.rt.autocast():
                    out.append(self.model(x.contiguous() if exact else x).float().cpu())
                self.progress.advance(len(part))
        logits = torch.cat(out).numpy().astype(np.float64)
        return 1.0 / (1.0 + np.exp(-logits)), logits

    def _per_patient(
        self, idx: np.ndarray, probs: np.ndarray, logits: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Image scores -> one per test patient (the mean probability over its images)."""
        owner = self.data.image_patient[idx]
        patients = np.unique(owner)
        p_probs = np.array([probs[owner == p].mean() for p in patients])
        p_logits = np.array([logits[owner == p].mean() for p in patients])
        return patients, self.data.labels[patients].astype(int), p_probs, p_logits
