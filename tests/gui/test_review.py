"""Review, driven as a user would: a finished run (tiny, but real: `bpd train`), its
out-of-fold Grad-CAM computed by the real `bpd explain` child process and cached, the
table sorted by probability, infants stepped through with the keyboard, the overlay
toggled and faded, the view exported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPoint, Qt

from bpd_gui.widgets.image_viewer import WINDOW_PRESETS
from core.cohort.images import read_image
from tests.gui.review_run import SEVERAL_IMAGES, tiny_run

pytestmark = pytest.mark.slow


@pytest.fixture
def review(window, qtbot):
    view = window.pages["review"]
    window.show_page("review")
    view.fractions = []  # the child's progress, as the progress bar saw it
    view.explainer.progress.connect(view.fractions.append)
    view.open_run(tiny_run())
    qtbot.waitUntil(lambda: not view.explainer.is_running(), timeout=300_000)
    assert view.explanations is not None, view.explain_status.text()
    return view


def _probs(view):
    by_id = {r.patient_id: r.prob for r in view.table_data.rows}
    return [by_id[pid] for pid in view.visible_order()]


def _click_header(qtbot, view, column):
    header = view.table.horizontalHeader()
    x = header.sectionViewportPosition(column) + header.sectionSize(column) // 2
    qtbot.mouseClick(header.viewport(), Qt.LeftButton, pos=QPoint(x, header.height() // 2))


def test_run_opens_with_every_tested_infant_and_sorts_by_probability(review, qtbot):
    assert review.model.rowCount() == 12  # the tiny run's patients, each tested once
    assert review.table_data.row(SEVERAL_IMAGES[0]).images[1:]  # several radiographs
    assert len(review.explanations.rows) == 12  # the cache the child process wrote
    # first test of the session's run: computed here, with progress up to 100 %
    assert len(review.fractions) > 2 and review.fractions[-1] == pytest.approx(1.0)
    assert (review.run_dir / "explanations" / "index.csv").is_file()
    assert "threshold 0.50" in review.run_info.text()
    probs = _probs(review)
    assert probs == sorted(probs, reverse=True)  # opens with the most positive first
    _click_header(qtbot, review, 1)
    assert _probs(review) == sorted(probs)
    _click_header(qtbot, review, 1)
    assert _probs(review) == sorted(probs, reverse=True)
    # TP/FP/TN/FN at the run's threshold
    for r in review.table_data.rows:
        assert r.outcome == ("T" if (r.prob >= 0.5) == bool(r.label) else "F") + (
            "P" if r.prob >= 0.5 else "N"
        )
    review.result_filter.setCurrentIndex(review.result_filter.findData("errors"))
    shown = [review.table_data.row(pid).outcome for pid in review.visible_order()]
    assert set(shown) <= {"FP", "FN"}
    review.result_filter.setCurrentIndex(0)
    review.filter_edit.setText(review.table_data.rows[0].patient_id)
    assert review.visible_order() == [review.table_data.rows[0].patient_id]


def test_keyboard_steps_through_infants_and_shows_each_radiograph(review, qtbot):
    review.filter_edit.clear()
    order = review.visible_order()
    review.select_row(0)
    review.table.setFocus()
    qtbot.waitUntil(lambda: review.is_showing(order[0]), timeout=20_000)
    qtbot.keyClick(review.table, Qt.Key_Down)
    assert review.patient_id == order[1]
    qtbot.keyClick(review.table, Qt.Key_J)
    assert review.patient_id == order[2]
    qtbot.keyClick(review.table, Qt.Key_K)
    assert review.patient_id == order[1]
    qtbot.waitUntil(lambda: review.is_showing(order[1]), timeout=20_000)
    # the radiograph at its own resolution, not the 32 px the model saw
    path = review.current_image()
    h, w = read_image(path).pixels.shape
    pixmap = review.viewer.base.pixmap()
    assert (pixmap.width(), pixmap.height()) == (w, h) and max(h, w) > 32
    assert order[1] in review.caption.text()


def test_overlay_toggles_fades_and_states_its_scaling(review, qtbot, tmp_path):
    ex = review.explanations
    pid = next(p for p in review.visible_order() if ex.peak(p) > 0)
    review.select_patient(pid)
    review.table.setFocus()
    qtbot.waitUntil(lambda: review.is_showing(pid), timeout=20_000)
    viewer = review.viewer
    assert review.overlay_state == "shown" and viewer.heat.isVisible()
    heat = viewer.heat.pixmap()
    assert (heat.width(), heat.height()) == (viewer.base.pixmap().width(),
                                              viewer.base.pixmap().height())  # fmt: skip
    assert "shared scaling" in review.scaling_note.text()
    assert f"fold {ex.rows[pid]['fold_id']}" in review.scaling_note.text()

    qtbot.keyClick(review.table, Qt.Key_O)
    assert not review.overlay_check.isChecked() and not viewer.heat.isVisible()
    qtbot.mouseClick(review.overlay_check, Qt.LeftButton)
    assert review.overlay_check.isChecked() and viewer.heat.isVisible()
    review.opacity.setValue(75)
    assert viewer.heat.opacity() == pytest.approx(0.75)

    shared_max = float(np.nanmax(review.current_values))
    review.scaling.setCurrentIndex(review.scaling.findData("image"))
    assert "per-image" in review.scaling_note.text()
    assert float(np.nanmax(review.current_values)) == pytest.approx(1.0, abs=0.02)
    assert shared_max <= 1.0

    review.viewer.set_window(0.4, 0.5)  # window/level, as a right-drag would
    out = review.export_png(tmp_path / "view.png")
    img = Image.open(out).convert("RGB")
    h, w = review.viewer.pixels.shape
    assert img.width > w and img.height > h  # colour bar and caption around the radiograph
    rgb = np.asarray(img)[:h, :w].astype(int)
    assert (np.abs(rgb[..., 0] - rgb[..., 2]) > 10).mean() > 0.2  # the heat map is in it


def test_flat_maps_are_said_not_painted(review, qtbot):
    ex = review.explanations
    empty = [p for p in review.visible_order() if ex.peak(p) <= 0]
    assert empty, "the tiny random-init run (seed 5) leaves some maps flat"
    review.select_patient(empty[0])
    qtbot.waitUntil(lambda: review.is_showing(empty[0]), timeout=20_000)
    assert review.overlay_state == "empty" and "all zero" in review.scaling_note.text()
    assert review.viewer.heat.pixmap().isNull()
    assert f"{len(empty)} all-zero" in review.explain_status.text()


def test_every_image_of_an_infant_window_level_and_zoom(review, qtbot):
    pid = SEVERAL_IMAGES[0]
    review.select_patient(pid)
    review.table.setFocus()
    qtbot.waitUntil(lambda: review.is_showing(pid), timeout=20_000)
    first = review.current_image()
    assert Path(review.explanations.rows[pid]["image"]) == first  # the image the fold scored
    qtbot.keyClick(review.table, Qt.Key_PageDown)
    assert review.image_index == 1 and review.current_image() != first
    qtbot.waitUntil(lambda: review.is_showing(pid), timeout=20_000)
    n = len(review.table_data.row(pid).images)
    assert review.image_label.text() == f"image 2 of {n}"
    assert review.overlay_state == "none" and "No Grad-CAM for this image" in (
        review.scaling_note.text()
    )
    qtbot.keyClick(review.table, Qt.Key_PageUp)
    qtbot.waitUntil(lambda: review.is_showing(pid), timeout=20_000)
    assert review.current_image() == first and review.overlay_state in ("shown", "empty")

    viewer = review.viewer
    centre, width = viewer.centre, viewer.width
    vp = viewer.viewport()
    qtbot.mousePress(vp, Qt.RightButton, pos=QPoint(100, 100))
    qtbot.mouseMove(vp, QPoint(140, 60))  # right-drag: wider window (x), brighter level (y)
    qtbot.mouseRelease(vp, Qt.RightButton, pos=QPoint(140, 60))
    assert viewer.width > width and viewer.centre > centre
    shown = viewer.base.pixmap().toImage()
    review.window_combo.setCurrentIndex(1)
    review.window_combo.activated.emit(1)
    assert (viewer.centre, viewer.width) == pytest.approx(WINDOW_PRESETS[1][1:])
    assert viewer.base.pixmap().toImage() != shown  # the radiograph was redrawn

    fitted = viewer.zoom_level()
    qtbot.keyClick(review.table, Qt.Key_Plus)
    assert viewer.zoom_level() == pytest.approx(fitted * 1.25)
    qtbot.keyClick(review.table, Qt.Key_F)
    assert viewer.zoom_level() == pytest.approx(fitted)


def test_results_opens_a_run_without_models_in_review(window, data_dir):
    run = data_dir / "run_folders" / "demo-full"  # predictions only: no model.pt, no table
    window.pages["results"].review_requested.emit(str(run))
    view = window.pages["review"]
    assert window.current_page() == "review" and view.run_dir == run
    assert view.model.rowCount() == 163
    assert not view.explainer.is_running() and not view.explain_button.isEnabled()
    assert "no fold models" in view.explain_status.text()
    assert "could not be read" in view.run_info.text()


def test_switching_runs_stops_a_running_explanation_quietly(review, qtbot, data_dir, caplog):
    review.compute_explanations()  # recompute the tiny run's maps...
    assert review.explainer.is_running() and review.explain_progress.isVisible()
    review.open_run(data_dir / "run_folders" / "demo-full")  # ...and move on at once
    assert not review.explainer.is_running() and not review.explain_progress.isVisible()
    qtbot.wait(300)
    assert "Grad-CAM failed" not in caplog.text  # a stop asked for is not an error
    review.open_run(tiny_run())  # its cache is intact: index.csv is written last
    assert review.explanations is not None and len(review.explanations.rows) == 12
    assert not review.explainer.is_running()
