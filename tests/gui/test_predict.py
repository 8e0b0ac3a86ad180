"""Predict, driven as a user would: a finished run chosen, two radiographs and a DICOM
dropped, `bpd predict` run as a child process, each probability, class and overlay
shown, the results exported as CSV."""

from __future__ import annotations

import csv
import shutil

import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from tests.gui.review_run import tiny_run

pytestmark = pytest.mark.slow


def _drop(widget, files):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(f)) for f in files])
    event = QDropEvent(QPointF(5, 5), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    widget.dropEvent(event)


def test_predict_two_images_and_a_dicom(window, qtbot, images_dir, dicom_dir, tmp_path):
    view = window.pages["predict"]
    window.show_page("predict")
    view.set_model(tiny_run())
    files = [images_dir / "IM-0115-0001.jpeg", images_dir / "person1_bacteria_1.jpeg",
             dicom_dir / "rsna_cr_jpeg_baseline_mono2.dcm"]  # fmt: skip
    _drop(view.input_list, files)
    assert view.input_list.count() == 3
    view.start()
    assert view.is_running()
    qtbot.waitUntil(lambda: not view.is_running(), timeout=300_000)
    assert "3 image(s) predicted" in view.status.text(), view.status.text()
    assert view.results.rowCount() == 3
    by_name = {r["image"].rsplit("/", 1)[-1]: r for r in view.rows}
    assert set(by_name) == {f.name for f in files}
    for row in view.rows:
        p = float(row["prob"])
        assert 0.0 <= p <= 1.0 and row["predicted_class"] == str(int(p >= 0.5))
    # the DICOM's overlay: the 1024 x 1024 radiograph itself, with colour bar and caption
    dicom_row = next(i for i in range(3) if view.results.item(i, 0).text() == files[2].name)
    view.results.selectRow(dicom_row)
    png = by_name[files[2].name]["cam_png"]
    with Image.open(png) as img:
        assert img.width > 1024 and img.height > 1024
    shown = view.viewer.base.pixmap()
    assert (shown.width(), shown.height()) == Image.open(png).size
    # probability column sorts numerically
    view.results.sortItems(2, Qt.AscendingOrder)
    shown_probs = [float(view.results.item(i, 2).text()) for i in range(3)]
    assert shown_probs == sorted(shown_probs)

    out = view.export_csv(tmp_path / "mine.csv")
    assert out == [tmp_path / "mine.csv"]
    with open(out[0], encoding="utf-8", newline="") as fh:
        exported = list(csv.DictReader(fh))
    assert [r["prob"] for r in exported] == [r["prob"] for r in view.rows]


def test_a_table_cannot_be_mixed_with_images(window, images_dir, tmp_path):
    view = window.pages["predict"]
    view.add_files([str(images_dir / "IM-0115-0001.jpeg")])
    view.add_files([str(tmp_path / "new.csv")])  # refused: one table on its own
    assert view.inputs == [str(images_dir / "IM-0115-0001.jpeg")]


def test_predict_a_table_of_new_infants(window, qtbot, images_dir, tmp_path):
    for name in ("IM-0115-0001.jpeg", "IM-0117-0001.jpeg", "person1_bacteria_1.jpeg"):
        shutil.copyfile(images_dir / name, tmp_path / name)  # images beside their table
    table = tmp_path / "new infants.csv"
    table.write_text(
        "patient_id,image\nNEW-1,IM-0115-0001.jpeg\nNEW-1,IM-0117-0001.jpeg\n"
        "NEW-2,person1_bacteria_1.jpeg\n",
        encoding="utf-8",
    )
    view = window.pages["predict"]
    view.set_model(tiny_run())
    view.cam_check.setChecked(False)
    view.add_files([str(table)])
    view.start()
    qtbot.waitUntil(lambda: not view.is_running(), timeout=300_000)
    assert [r["patient_id"] for r in view.rows] == ["NEW-1", "NEW-1", "NEW-2"]
    assert not view.results.isColumnHidden(1)  # the infant column is shown for a table
    view.results.selectRow(0)
    assert "overlays were off" in view.viewer_note.text()
    written = view.export_csv(tmp_path / "out.csv")
    assert [p.name for p in written] == ["out.csv", "out_patients.csv"]
    with open(written[1], encoding="utf-8", newline="") as fh:
        patients = list(csv.DictReader(fh))
    assert [(p["patient_id"], p["n_images"]) for p in patients] == [("NEW-1", "2"), ("NEW-2", "1")]
