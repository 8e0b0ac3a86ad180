"""The Cohort page's Box column on real demo radiographs: each patient's box source from
TABLE.crops.csv (manual, accepted, auto? for an unreviewed suggestion, — for none), and
refreshed when the crop tool saves a box or the sidecar is rewritten outside the app."""

from __future__ import annotations

import csv

from PySide6.QtCore import Qt

from bpd_gui.widgets.patient_list import BOX_COLUMN, NO_BOX
from core.cohort.crops import Crop, CropEntry, CropTable, file_sha256, sidecar_path, write_sidecar
from tests.core.test_final_model import tiny_table


def test_box_column_follows_the_sidecar_and_the_crop_tool(window, qtbot, tmp_path):
    table, root = tiny_table(tmp_path, 2)
    with open(table, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    ids = [r["patient_id"] for r in rows]
    sha = [file_sha256(root / r["image"]) for r in rows]
    sidecar = sidecar_path(table)
    write_sidecar(sidecar, CropTable((
        CropEntry(rows[0]["image"], sha[0], Crop(20, 30, 200, 210, source="manual")),
        CropEntry(rows[1]["image"], sha[1], Crop(20, 30, 200, 210, source="auto")),
    )))  # fmt: skip

    window.session.open_with_guesses(str(table), str(root))
    qtbot.waitUntil(lambda: window.session.cohort is not None, timeout=20000)
    view = window.pages["cohort"]
    marks = view.patients.box_mark
    qtbot.waitUntil(lambda: marks(ids[0]) == "manual", timeout=20000)
    assert [marks(pid) for pid in ids] == ["manual", "auto?", NO_BOX, NO_BOX]
    assert view.patients.headerItem().text(BOX_COLUMN) == "Box"

    # accepting the suggestion in the crop tool marks the patient at once
    qtbot.mouseClick(view.crop_button, Qt.MouseButton.LeftButton)
    dialog = view.crop_dialog
    qtbot.addWidget(dialog)
    dialog.show_image([path for _, path in dialog.images].index(root / rows[1]["image"]))
    qtbot.keyClick(dialog, Qt.Key.Key_A)
    qtbot.waitUntil(lambda: marks(ids[1]) == "accepted", timeout=10000)
    dialog.close()

    # a sidecar rewritten outside the app (e.g. `bpd cohort autobox`) is followed too
    write_sidecar(sidecar, CropTable((
        CropEntry(rows[3]["image"], sha[3], Crop(10, 10, 150, 150, source="manual")),
    )))  # fmt: skip
    qtbot.waitUntil(lambda: marks(ids[3]) == "manual", timeout=10000)
    assert [marks(pid) for pid in ids] == [NO_BOX, NO_BOX, NO_BOX, "manual"]
    assert "manual" in view.patients._items[ids[3]].toolTip(BOX_COLUMN)
