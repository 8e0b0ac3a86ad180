"""The crop tool driven by keyboard and mouse on real demo radiographs: accept an automatic
suggestion, draw a box, copy the previous box, the progress count and the list's marks,
and the sidecar it writes (what training then uses)."""

from __future__ import annotations

import csv
import dataclasses

from PySide6.QtCore import Qt

from bpd_gui.dialogs.crop_dialog import CropDialog
from core.cohort.crops import (
    Crop,
    CropEntry,
    CropTable,
    file_sha256,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)
from tests.core.test_final_model import tiny_table


def _images(tmp_path):
    table, root = tiny_table(tmp_path, 2)
    with open(table, encoding="utf-8", newline="") as fh:
        refs = [r["image"] for r in csv.DictReader(fh)]
    return table, [(ref, root / ref) for ref in refs]


def test_crop_tool_keyboard_and_mouse(qtbot, tmp_path):
    table, images = _images(tmp_path)
    sidecar = sidecar_path(table)
    suggestion = Crop(20, 30, 200, 210, source="auto")
    write_sidecar(sidecar, CropTable((CropEntry(images[0][0], file_sha256(images[0][1]),
                                                suggestion),)))  # fmt: skip
    dialog = CropDialog(images, sidecar)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    assert dialog.progress.text() == "0 of 4 images have a box (1 automatic suggestions to review)"
    assert dialog.list.item(0).text().startswith("?")

    # A: the suggestion is accepted as it is, and the tool moves on
    qtbot.keyClick(dialog, Qt.Key.Key_A)
    assert dialog.index == 1
    assert read_sidecar(sidecar).for_sha(file_sha256(images[0][1])) == Crop(
        20, 30, 200, 210, source="accepted"
    )
    assert dialog.progress.text() == "1 of 4 images have a box"
    assert dialog.list.item(0).text().startswith("✓")

    # a box dragged on the image (scene coordinates = the image's pixel grid), turned 5°
    view = dialog.view
    start = view.mapFromScene(30.0, 40.0)
    end = view.mapFromScene(190.0, 200.0)
    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=end)
    drawn = dialog.box
    assert drawn is not None and drawn.source == "manual"
    assert abs(drawn.x0 - 30) <= 2 and abs(drawn.y1 - 200) <= 2
    dialog.spins["rotation"].setValue(5.0)
    assert dialog.box.rotation == 5.0 and view.rect.rotation() == 5.0
    qtbot.keyClick(dialog, Qt.Key.Key_A)

    # C copies the previous box onto the third image (same size: the same numbers)
    assert dialog.index == 2 and dialog.box is None
    qtbot.keyClick(dialog, Qt.Key.Key_C)
    assert dialog.box.geometry() == dialog.previous[0].geometry()
    qtbot.keyClick(dialog, Qt.Key.Key_A)
    # N skips the last image; P goes back
    assert dialog.index == 3
    qtbot.keyClick(dialog, Qt.Key.Key_P)
    assert dialog.index == 2

    boxes = read_sidecar(sidecar)
    assert len(boxes.used()) == 3
    assert boxes.for_sha(file_sha256(images[1][1])).rotation == 5.0
    assert boxes.for_sha(file_sha256(images[3][1])) is None
    assert dialog.progress.text() == "3 of 4 images have a box"
    assert [dialog.list.item(i).text()[0] for i in range(4)] == ["✓", "✓", "✓", " "]


def test_a_box_outside_the_image_is_not_accepted(qtbot, tmp_path):
    _, images = _images(tmp_path)
    dialog = CropDialog(images, tmp_path / "boxes.csv")
    qtbot.addWidget(dialog)
    dialog._set_box(Crop(0, 0, 5000, 100))
    dialog.accept_box()
    assert "outside" in dialog.status.text() and not (tmp_path / "boxes.csv").exists()


def test_cohort_page_opens_the_crop_tool_on_every_image(window, qtbot, tmp_path):
    from core.cohort.crops import sidecar_path as sidecar_of

    qtbot.mouseClick(window.pages["start"].demo_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.session.cohort is not None, timeout=20000)
    view = window.pages["cohort"]
    assert view.crop_button.isEnabled()
    qtbot.mouseClick(view.crop_button, Qt.MouseButton.LeftButton)
    dialog = view.crop_dialog
    qtbot.addWidget(dialog)
    n = window.session.cohort.n_images
    assert dialog.list.count() == n and dialog.progress.text() == f"0 of {n} images have a box"
    assert dialog.sidecar == sidecar_of(window.session.cohort.table_path)
    assert dialog.images[0][0].startswith("images/")
    dialog.close()
    # a run started from the app reads the sidecar once the table has one
    source = window.session.source
    assert source.core_source().crops is None
    table = tmp_path / "cohort.csv"
    table.write_text("patient_id,image,diagnosis\n")
    write_sidecar(sidecar_of(table), CropTable())
    other = dataclasses.replace(source, table=str(table))
    assert other.core_source().crops == str(sidecar_of(table))
