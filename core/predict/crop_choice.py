"""Which crop box a new image is cut to before the model sees it, and what is said about it.

In this order: the image's box from the sidecar given with the prediction (--crops), else
the box the run recorded for the same file (content hash) when it trained, else, with
--autobox, the automatic chest box found now (core.cohort.chest_box, the method `bpd
cohort autobox` uses), else the whole image. A model whose card says it trained on crops
(core.cohort.crop_policy) and that gets a whole image is warned about once on stderr and
in that image's `crop` cell of the output.

--autobox is refused for a model trained on whole images (it would see pictures unlike its
training images) and said to be a different method for a model trained on boxes drawn by
hand or by another autobox version: the automatic box is only what the model learnt from
when it trained on accepted automatic boxes of the same version.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.cohort.crop_policy import autobox_description, method_text, trained_on_crops
from core.cohort.crops import Crop, CropTable, crop_for_file
from core.errors import InputError

CROP_FIELD = "crop"
WHOLE = "none"
WHOLE_UNLIKE_TRAINING = "none: scored whole, but the model was trained on crop boxes"
AUTOBOX = "autobox"
AUTOBOX_FALLBACK = "autobox: no lung fields found, cut to the body's width"


@dataclass
class CropChoice:
    boxes: CropTable  # the prediction's own boxes over the run's recorded ones
    autobox: bool
    policy: dict[str, Any]  # the model's crop policy ({}: not recorded)
    column: bool  # whether the output gets a `crop` column

    def for_image(
        self, path: str | Path, pixels: Callable[[], np.ndarray] | None = None
    ) -> tuple[Crop | None, str]:
        """(the box the image is cut to or None, the text of its `crop` cell);
        ImageError (naming the file) when it cannot be read. `pixels`: the image's
        decoded pixels, for --autobox (the prediction decodes each image once)."""
        crop = crop_for_file(path, self.boxes)
        if crop is not None:
            return crop, f"box: {crop.source}"
        if self.autobox:
            from core.cohort.chest_box import find_chest_box
            from core.cohort.images import read_image

            found = find_chest_box(pixels() if pixels else read_image(path).pixels)
            return found.crop, AUTOBOX if found.found else AUTOBOX_FALLBACK
        return None, WHOLE_UNLIKE_TRAINING if trained_on_crops(self.policy) else WHOLE


def crop_choice(
    policy: dict[str, Any], recorded: CropTable, crops: CropTable | None, autobox: bool
) -> CropChoice:
    """How a prediction picks each image's box: `policy` the model's crop policy,
    `recorded` the boxes its run trained with, `crops` the prediction's sidecar."""
    if autobox and policy and not trained_on_crops(policy):
        raise InputError("--autobox: this model was trained on whole images; cutting new "
                         "images to a chest box would show it pictures unlike the ones it "
                         "learnt from (docs/method.md, 'Crops')")  # fmt: skip
    boxes = recorded.merged(crops.used()) if crops is not None else recorded
    column = trained_on_crops(policy) or crops is not None or autobox
    return CropChoice(boxes, autobox, dict(policy or {}), column)


def autobox_caveat(policy: dict[str, Any]) -> str | None:
    """Why --autobox differs from what the model trained on, or None when it does not."""
    if not policy:
        return ("--autobox: the model card does not say whether the model was trained on "
                "crops (exported before BPD Studio recorded it)")  # fmt: skip
    if not trained_on_crops(policy):
        return None
    if policy.get("method") != "autobox":
        return (f"--autobox: the model was trained on {method_text(policy)}; automatic "
                "boxes differ from those (IoU about 0.8 against boxes drawn by hand on the "
                "demo images)")  # fmt: skip
    trained = (policy.get("autobox") or {}).get("version")
    now = autobox_description()["version"]
    if trained != now:
        return (f"--autobox: the model's boxes came from autobox version {trained}, this is "
                f"version {now}; the boxes may differ")  # fmt: skip
    return None


def crop_warning(policy: dict[str, Any], rows: list[dict[str, Any]]) -> str | None:
    """One line for stderr when a model trained on crops scored images whole."""
    whole = sum(r.get(CROP_FIELD) == WHOLE_UNLIKE_TRAINING for r in rows)
    if not whole:
        return None
    return (f"warning: the model was trained on {method_text(policy)}; {whole} image(s) "
            "here have no box and were scored whole (their `crop` cell says so): give "
            "their boxes with --crops FILE, or cut them with --autobox (consistent only "
            "with a model trained on automatic boxes); docs/method.md, 'Crops'")  # fmt: skip


CARD = "model.json"  # core.models.export.CARD_FILE (that module loads torch)


def model_crop_policy(path: str | Path) -> dict[str, Any]:
    """The crop policy of an exported model folder or a run folder, read from its JSON
    alone (no torch: the app's Predict page asks it); {} when nothing records one."""
    import json

    from core.cohort.crop_policy import crop_policy
    from core.runs.folder import RunFolder

    path = Path(path)
    cards = [path / CARD, RunFolder(path).final_model_dir / CARD]
    for card in cards:
        if card.is_file():
            try:
                policy = json.loads(card.read_text(encoding="utf-8")).get("crops")
            except (OSError, ValueError):
                return {}
            if policy or card == cards[0]:
                return policy or {}
    run = RunFolder(path)
    if not run.has_config:
        return {}
    try:
        return crop_policy(run.crops())
    except InputError:
        return {}
