"""The Predict page's 'Cut to the chest box (automatic)': enabled only for a model trained
on crop boxes (read from its run config or model card, without torch), and sent as the
prediction request's autobox (bpd predict --autobox). The page stays hidden, so no
prediction child starts: the request is what the page would send."""

from __future__ import annotations

import json

from core.cohort.crops import Crop, CropEntry, CropTable
from core.runs.folder import RunFolder


def _run(folder, *sources: str) -> str:
    boxes = CropTable(tuple(CropEntry(f"i{i}.png", f"{i:064x}", Crop(5, 5, 90, 90, source=s))
                            for i, s in enumerate(sources)))  # fmt: skip
    return str(RunFolder.create(folder, {"crops": boxes.to_json()}, {}).path)


def test_autobox_only_for_a_model_trained_on_crops(window, qtbot, tmp_path, images_dir):
    view = window.pages["predict"]
    sent = []
    view.server.submit = lambda model, request: sent.append(request)
    check = view.autobox_check

    view.set_model(_run(tmp_path / "whole"))  # no boxes recorded: whole images
    assert not check.isEnabled() and "whole images" in check.toolTip()

    cropped = _run(tmp_path / "cropped", "accepted", "accepted")
    view.set_model(cropped)
    assert check.isEnabled() and "automatic chest boxes (accepted) (2 images)" in check.toolTip()
    view.add_files([str(images_dir / "IM-0115-0001.jpeg")])
    view.start()
    assert "autobox" not in sent[-1]  # off until ticked
    check.setChecked(True)
    view.start()
    assert sent[-1]["autobox"] is True

    # an exported model's card (model.json) says it too; a whole-image model unticks it
    export = tmp_path / "export"
    export.mkdir()
    card = {"crops": {"trained_on_crops": False, "method": "none"}}
    (export / "model.json").write_text(json.dumps(card), encoding="utf-8")
    view.set_model(str(export))
    assert not check.isEnabled() and not check.isChecked()
    view.start()
    assert "autobox" not in sent[-1]
