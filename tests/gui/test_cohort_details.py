"""Cohort page details on real demo radiographs: every image of a patient, whole problem
messages, patient counts and the image pattern in the mapping dialog, choosing the
sheet of a workbook where several look like data."""

from __future__ import annotations

import shutil

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox, QLabel, QPushButton

from bpd_gui.cohort_session import CohortSource
from core import paths


def _images(n_normal: int, n_pneumonia: int):
    demo = paths.demo_cohort_table().parent / "images"
    return (sorted((demo / "NORMAL").iterdir())[:n_normal],
            sorted((demo / "PNEUMONIA").iterdir())[:n_pneumonia])  # fmt: skip


def _wait_cohort(qtbot, window, previous=None):
    qtbot.waitUntil(
        lambda: window.session.cohort is not None and window.session.cohort is not previous,
        timeout=20000,
    )
    return window.session.cohort


def _ok(dialog):
    return dialog.buttons.button(QDialogButtonBox.Ok)


def test_a_patient_with_eight_images_shows_three_and_opens_all(window, qtbot, tmp_path):
    normal, pneumonia = _images(4, 11)
    rows = ["patient_id,image,diagnosis"]
    for src in normal + pneumonia:
        shutil.copy(src, tmp_path / src.name)
    rows += [f"N{i},{src.name},NORMAL" for i, src in enumerate(normal)]
    rows += [f"MANY,{src.name},PNEUMONIA" for src in pneumonia[:8]]  # one infant, 8 images
    rows += [f"P{i},{src.name},PNEUMONIA" for i, src in enumerate(pneumonia[8:])]
    (tmp_path / "cohort.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    window.session.open_with_guesses(str(tmp_path / "cohort.csv"))
    cohort = _wait_cohort(qtbot, window)
    view = window.pages["cohort"]
    view.select_patient("MANY")
    detail = view.detail
    assert "8 image(s)" in detail.title.text()
    tiles = [w for w in detail._image_labels if isinstance(w, QLabel)]
    assert len(tiles) == 3
    more = detail.findChild(QPushButton, "more_images")
    assert more is not None and more.text() == "+5 more"
    qtbot.mouseClick(more, Qt.LeftButton)
    dialog = detail.images_dialog
    assert dialog is not None and dialog.isVisible() and len(dialog.tiles) == 8
    qtbot.waitUntil(lambda: all(t.pixmap() is not None and not t.pixmap().isNull()
                                for t in dialog.tiles), timeout=20000)  # fmt: skip
    names = sorted(w.text() for w in dialog.findChildren(QLabel, "image_name"))
    patient = next(p for p in cohort.patients if p.patient_id == "MANY")
    assert names == sorted(r.path.name for r in patient.images)
    dialog.reject()
    view.select_patient("N0")  # one image: no button
    assert not any(isinstance(w, QPushButton) for w in detail._image_labels)


def test_a_long_problem_message_wraps_and_is_shown_whole(window, qtbot, tmp_path):
    normal, pneumonia = _images(3, 3)
    rows = ["id;file;bpd"]
    for i, src in enumerate(normal + pneumonia):
        shutil.copy(src, tmp_path / src.name)
        rows.append(f"P{i};{src.name};{'no BPD' if i < 3 else 'severe'}")
    deep = "a-very-long-folder-name-that-a-hospital-export-made/" * 4
    rows.append(f"P9;{deep}missing-radiograph-of-this-infant.png;severe")
    (tmp_path / "cohort.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    view = window.pages["cohort"]
    window.show_page("cohort")
    window.resize(1024, 700)
    view.open_table(str(tmp_path / "cohort.csv"))
    qtbot.waitUntil(lambda: view.mapping_dialog is not None, timeout=10000)
    qtbot.mouseClick(_ok(view.mapping_dialog), Qt.LeftButton)
    cohort = _wait_cohort(qtbot, window)
    problem = next(p for p in cohort.problems if p.patient_id == "P9")
    assert len(problem.message) > 150
    problems = view.problems
    item = next(problems.topLevelItem(i) for i in range(problems.topLevelItemCount())
                if problems.topLevelItem(i).text(3) == "P9")  # fmt: skip
    qtbot.waitUntil(lambda: problems.visualItemRect(item).height() > 0, timeout=5000)
    # the message column ends inside the visible list and its row grew to wrap the text
    header = problems.header()
    last = problems.columnCount() - 1
    assert header.sectionViewportPosition(last) + header.sectionSize(last) <= (
        problems.viewport().width() + 1
    )
    line = problems.fontMetrics().height()
    qtbot.waitUntil(lambda: problems.visualItemRect(item).height() >= 2 * line, timeout=5000)
    assert all(problem.message in item.toolTip(c) for c in range(problems.columnCount()))
    problems.setCurrentItem(item)  # the page shows the whole text under the list
    assert view.problem_text.isVisible() and problem.message in view.problem_text.text()


def _one_row_per_patient(tmp_path):
    """Images named <id>_<n>.jpeg beside a table without an image column."""
    normal, pneumonia = _images(3, 4)
    (tmp_path / "xr").mkdir()
    rows = ["patient_id,diagnosis,ward"]
    for i, src in enumerate(normal):
        shutil.copy(src, tmp_path / "xr" / f"N{i}_1.jpeg")
        rows.append(f"N{i},NORMAL,A")
    for i, src in enumerate(pneumonia[:3]):
        shutil.copy(src, tmp_path / "xr" / f"P{i}_1.jpeg")
        rows.append(f"P{i},PNEUMONIA,B")
    shutil.copy(pneumonia[3], tmp_path / "xr" / "P0_2.jpeg")  # P0 has two radiographs
    (tmp_path / "patients.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return tmp_path / "patients.csv"


def test_the_mapping_dialog_finds_images_by_a_pattern(window, qtbot, tmp_path):
    table = _one_row_per_patient(tmp_path)
    view = window.pages["cohort"]
    window.session.set_images_root(str(tmp_path / "xr"))
    view.open_table(str(table))
    qtbot.waitUntil(lambda: view.mapping_dialog is not None, timeout=10000)
    dialog = view.mapping_dialog
    dialog.combos["image"].setCurrentText("ward")  # an image column...
    dialog.pattern.setText("{patient_id}_*.jpeg")  # ...and a pattern: one or the other
    assert not _ok(dialog).isEnabled() and "either an image column" in dialog.message.text()
    dialog.combos["image"].setCurrentIndex(0)  # (not in table)
    dialog.pattern.setText("*.jpeg")
    assert not _ok(dialog).isEnabled() and "{patient_id}" in dialog.message.text()
    dialog.pattern.setText("{patient_id}_*.jpeg")
    assert _ok(dialog).isEnabled(), dialog.message.text()
    qtbot.mouseClick(_ok(dialog), Qt.LeftButton)
    cohort = _wait_cohort(qtbot, window)
    assert window.session.source.image_pattern == "{patient_id}_*.jpeg"
    assert (cohort.n_patients, cohort.n_images, cohort.n_positive) == (6, 7, 3)
    assert "pattern {patient_id}_*.jpeg" in view.source_label.text()
    # the pattern is what a run records, and it comes back when the mapping reopens
    core = window.session.source.core_source()
    assert core.image_pattern == "{patient_id}_*.jpeg" and core.image_column is None
    view.edit_mapping()
    assert view.mapping_dialog is not dialog
    assert view.mapping_dialog.pattern.text() == "{patient_id}_*.jpeg"


def test_a_workbook_with_two_data_sheets_offers_them(window, qtbot, tmp_path):
    import openpyxl

    normal, pneumonia = _images(4, 4)
    book = openpyxl.Workbook()
    for title, (lo, hi) in (("Site A", (0, 2)), ("Site B", (2, 4))):
        sheet = book.active if title == "Site A" else book.create_sheet(title)
        sheet.title = title
        sheet.append(["patient_id", "image", "diagnosis"])
        for src in normal[lo:hi]:
            shutil.copy(src, tmp_path / src.name)
            sheet.append([f"{title[-1]}-{src.stem}", src.name, "NORMAL"])
        for src in pneumonia[lo:hi]:
            shutil.copy(src, tmp_path / src.name)
            sheet.append([f"{title[-1]}-{src.stem}", src.name, "PNEUMONIA"])
    book.save(tmp_path / "sites.xlsx")
    view = window.pages["cohort"]
    view.open_table(str(tmp_path / "sites.xlsx"))  # core refuses to guess: the dialog asks
    qtbot.waitUntil(lambda: view.mapping_dialog is not None, timeout=10000)
    first = view.mapping_dialog
    assert first.sheet_warning.isVisible() and "More than one sheet" in first.sheet_warning.text()
    choice = first.sheet_choice
    assert [choice.itemText(i) for i in range(choice.count())] == ["Site A", "Site B"]
    assert choice.isVisible() and choice.currentText() == "Site A"
    choice.setCurrentText("Site B")
    choice.textActivated.emit("Site B")  # as a user's pick
    qtbot.waitUntil(lambda: view.mapping_dialog is not first, timeout=10000)
    second = view.mapping_dialog
    assert second.sheet() == "Site B" and not second.sheet_warning.isVisible()
    assert second.preview.item(0, 0).text().startswith("B-")
    qtbot.mouseClick(_ok(second), Qt.LeftButton)
    cohort = _wait_cohort(qtbot, window)
    assert window.session.source.sheet == "Site B"
    assert all(p.patient_id.startswith("B-") for p in cohort.patients) and cohort.n_patients == 4
    assert "(sheet 'Site B')" in view.source_label.text()


def test_the_source_keeps_pattern_and_sheet_across_sessions():
    mapping = {"patient_id": "id", "outcome": "bpd"}
    outcome = {"positive": ["1"], "negative": ["0"]}
    src = CohortSource("t.xlsx", "/img", mapping, outcome, "{patient_id}_*.png", "Daten")
    assert CohortSource.from_json(src.to_json()) == src
    old = {k: v for k, v in src.to_json().items() if k not in ("image_pattern", "sheet")}
    assert CohortSource.from_json(old) == src.replace(image_pattern=None, sheet=None)
    core = src.core_source()
    assert (core.image_pattern, core.sheet) == ("{patient_id}_*.png", "Daten")
