"""What a model's training images were cut to: the crop policy a model card records.

A model trained on crop boxes has learnt from chests cut out of their radiographs; a new
image scored whole is a different picture (docs/method.md, "Crops"). The card says
whether the model saw crops, how they were made (boxes drawn by a person, automatic
boxes accepted as they were, or both) and, for automatic ones, the method's version and
settings, so `bpd predict --autobox` can cut a new image the same way. Only counts and
settings: no image names or boxes (the card travels to other sites).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from core.cohort.crops import CropTable

METHODS = ("none", "manual", "autobox", "mixed")


def crop_policy(crops: CropTable | None) -> dict[str, Any]:
    """The policy of a model trained with `crops` (the run's recorded boxes; None or
    empty: whole images)."""
    used = crops.used() if crops is not None else CropTable()
    if not len(used):
        return {"trained_on_crops": False, "method": "none"}
    sources = Counter(e.crop.source for e in used.entries)
    if set(sources) == {"accepted"}:
        method = "autobox"
    elif set(sources) == {"manual"}:
        method = "manual"
    else:
        method = "mixed"
    policy: dict[str, Any] = {
        "trained_on_crops": True,
        "method": method,
        "boxes": len(used),
        "sources": dict(sorted(sources.items())),
        "rotated": sum(e.crop.rotation != 0 for e in used.entries),
        # an image of the training table without a box was used whole
        "without_box": "used whole",
    }
    if sources.get("accepted"):
        policy["autobox"] = autobox_description()
    return policy


def autobox_description() -> dict[str, Any]:
    """The automatic chest box's name, version and settings (core.cohort.chest_box)."""
    from core.cohort import chest_box

    return {"function": "core.cohort.chest_box.find_chest_box",
            "version": chest_box.AUTOBOX_VERSION, "parameters": chest_box.parameters()}  # fmt: skip


def trained_on_crops(policy: dict[str, Any] | None) -> bool:
    return bool((policy or {}).get("trained_on_crops"))


def method_text(policy: dict[str, Any] | None) -> str:
    """One phrase for messages: how the model's training images were cut."""
    policy = policy or {}
    if not policy:
        return "not recorded (a model exported before crops were recorded)"
    if not trained_on_crops(policy):
        return "whole images"
    what = {"manual": "boxes drawn by hand", "autobox": "automatic chest boxes (accepted)",
            "mixed": "boxes drawn by hand and automatic ones"}  # fmt: skip
    return f"{what.get(policy.get('method'), 'crop boxes')} ({policy.get('boxes', '?')} images)"
