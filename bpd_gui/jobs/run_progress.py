"""How the app words a run's progress. The progress itself (RunProgress, built from the
typed events) lives in core.runs.run_progress, shared with the CLI's progress printer."""

from __future__ import annotations

from typing import Any

from core.runs.run_progress import EpochRecord, FoldProgress, RunProgress

__all__ = ["PHASE_LABELS", "PHASE_TITLES", "EpochRecord", "FoldProgress", "RunProgress",
           "describe_config", "format_duration"]  # fmt: skip

PHASE_TITLES = {
    "probe": "linear probe",
    "head": "head only",
    "layer4": "layer4 unfrozen",
    "layer3": "layer3 unfrozen",
    "layer2": "layer2 unfrozen",
    "full": "full fine-tuning",
}

PHASE_LABELS = {  # on the plots' phase lines
    "probe": "probe",
    "head": "head",
    "layer4": "+layer4",
    "layer3": "+layer3",
    "layer2": "+layer2",
    "full": "full",
}


def describe_config(cfg: dict[str, Any] | None) -> str:
    """One line: what this run trains (from its TrainConfig JSON)."""
    if not cfg:
        return ""
    strategy = str(cfg.get("strategy", "?"))
    epochs = str(cfg.get("epochs", "?"))
    if strategy.startswith("probe"):
        epochs = (
            f"{cfg.get('probe_epochs', '?')} probe + {epochs}"
            if "+" in strategy
            else (f"{cfg.get('probe_epochs', '?')} probe")
        )
    cutmix = (cfg.get("cutmix_finetune") or {}).get("enabled")
    parts = [
        f"{cfg.get('init', '?')} init",
        strategy + (" + CutMix" if cutmix else ""),
        f"{cfg.get('cv_folds', '?')} folds × {cfg.get('cv_repeats', '?')}",
        f"{epochs} epochs",
        f"{cfg.get('resolution', '?')} px",
        f"batch {cfg.get('batch_size', '?')}",
    ]
    return " · ".join(parts)



def format_duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "unknown"
    seconds = round(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{h} h {m:02d} min"
    if m:
        return f"{m} min {s:02d} s"
    return f"{s} s"
