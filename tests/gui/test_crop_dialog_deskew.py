"""Deskew in the crop tool, driven by the keyboard on "photographed" demo radiographs:
D finds the border and shows it on the photo with the upright preview, A keeps it (saved
in the sidecar at once, the image then shown upright for the box), X discards it; a
suggestion of `bpd cohort deskew` is shown for review the same way."""

from __future__ import annotations

import numpy as np
from PIL import Image
from PySide6.QtCore import Qt

from bpd_gui.dialogs.crop_dialog import CropDialog
from core import paths
from core.cohort.crops import CropEntry, CropTable, file_sha256, read_sidecar, write_sidecar
from core.cohort.images import read_image
from core.cohort.perspective import upright_size
from tests.core.photographs import corner_errors, photograph, random_quad


def _photos(tmp_path, n=2):
    """n photographed demo radiographs and one digital one, with the true quads."""
    root = paths.demo_cohort_table().parent
    files = sorted((root / "images").glob("*/*"))[5::40][: n + 1]
    rng = np.random.default_rng(2)
    images, quads = [], []
    for i, f in enumerate(files):
        pixels = read_image(f).pixels
        if i < n:
            quads.append(random_quad(rng, (320, 380)))
            pixels = photograph(pixels, quads[-1], (320, 380), seed=i)
        path = tmp_path / f"photo{i}.png"
        Image.fromarray((pixels * 255).astype(np.uint8)).save(path)
        images.append((path.name, path))
    return images, quads


def test_detect_show_keep_and_save_a_border(qtbot, tmp_path):
    images, quads = _photos(tmp_path)
    sidecar = tmp_path / "photos.csv.crops.csv"
    dialog = CropDialog(images, sidecar)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    assert dialog.pending is None and not dialog.preview.isVisible()

    # D: the border is drawn on the photo, the upright image beside it; nothing saved yet
    qtbot.keyClick(dialog, Qt.Key.Key_D)
    assert dialog.pending is not None
    assert corner_errors(dialog.pending.quad, quads[0]).max() < 4
    assert dialog.view.quad.isVisible() and dialog.preview.isVisible()
    assert not dialog.preview.pixmap().isNull()
    assert dialog.view.scene().sceneRect().width() == 380  # still the photo
    assert "A keeps the deskew" in dialog.status.text() and not sidecar.exists()

    # A: kept and saved; the tool stays here and shows the upright image for the box
    qtbot.keyClick(dialog, Qt.Key.Key_A)
    assert dialog.index == 0 and dialog.pending is None and not dialog.preview.isVisible()
    saved = read_sidecar(sidecar).for_sha(file_sha256(images[0][1]))
    assert saved is not None and saved.source == "accepted"
    assert saved.quad == dialog.box.quad and corner_errors(saved.quad, quads[0]).max() < 4
    h, w = upright_size(saved.quad)
    rect = dialog.view.scene().sceneRect()
    assert (rect.height(), rect.width()) == (h, w) and not dialog.view.quad.isVisible()
    assert dialog.progress.text().startswith("1 of 3 images have a box")

    # a box drawn on the upright image keeps the deskew under it
    view = dialog.view
    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=view.mapFromScene(20, 15))
    qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton,
                       pos=view.mapFromScene(w - 30, h - 20))  # fmt: skip
    assert dialog.box.quad == saved.quad and dialog.box.source == "manual"
    qtbot.keyClick(dialog, Qt.Key.Key_A)
    boxed = read_sidecar(sidecar).for_sha(file_sha256(images[0][1]))
    assert boxed.quad == saved.quad and abs(boxed.x0 - 20) <= 2 and boxed.source == "manual"
    assert dialog.index == 1

    # X discards a border under review: nothing is written for this image
    qtbot.keyClick(dialog, Qt.Key.Key_D)
    assert dialog.pending is not None
    qtbot.keyClick(dialog, Qt.Key.Key_X)
    assert dialog.pending is None and not dialog.view.quad.isVisible()
    assert read_sidecar(sidecar).entry(file_sha256(images[1][1])) is None

    # a digital radiograph: D says there is nothing to deskew
    qtbot.keyClick(dialog, Qt.Key.Key_N)
    qtbot.keyClick(dialog, Qt.Key.Key_D)
    assert dialog.pending is None and "No screen or film border" in dialog.status.text()


def test_a_suggested_border_is_shown_for_review_and_discarded(qtbot, tmp_path):
    from core.cohort.deskew import find_border

    images, _ = _photos(tmp_path, n=1)
    sidecar = tmp_path / "photos.csv.crops.csv"
    border = find_border(read_image(images[0][1]).pixels)
    sha = file_sha256(images[0][1])
    write_sidecar(sidecar, CropTable((CropEntry(images[0][0], sha, border.crop()),)))
    dialog = CropDialog(images, sidecar)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    assert dialog.pending is not None and dialog.pending.quad == border.quad
    assert dialog.preview.isVisible() and dialog.list.item(0).text().startswith("?")
    assert "Suggested screen border" in dialog.status.text()
    qtbot.keyClick(dialog, Qt.Key.Key_Escape)  # drops the border, not the tool
    assert dialog.isVisible() and dialog.pending is None
    assert read_sidecar(sidecar).entry(sha) is None  # the suggestion is gone
