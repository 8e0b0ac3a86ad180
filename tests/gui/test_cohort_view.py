"""Cohort page on the real demo cohort: one-click open, mapping dialog, problems, thumbnails."""

import shutil

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox

from core import paths
from core.cohort.table import read_table


def _wait_cohort(qtbot, window, previous=None):
    qtbot.waitUntil(
        lambda: window.session.cohort is not None and window.session.cohort is not previous,
        timeout=20000,
    )
    return window.session.cohort


def _demo_counts() -> tuple[int, int, int]:
    """Patients, positive and negative patients, straight from the demo table."""
    df = read_table(paths.demo_cohort_table())
    by_patient = df.groupby("patient_id")["diagnosis"].first()
    n_pos = int((by_patient == "PNEUMONIA").sum())
    return len(by_patient), n_pos, len(by_patient) - n_pos


def test_demo_cohort_opens_in_one_click(window, qtbot):
    n, n_pos, n_neg = _demo_counts()
    qtbot.mouseClick(window.pages["start"].demo_button, Qt.LeftButton)
    assert window.current_page() == "cohort"
    cohort = _wait_cohort(qtbot, window)
    assert (cohort.n_patients, cohort.n_positive, cohort.n_negative) == (n, n_pos, n_neg)
    view = window.pages["cohort"]
    assert view.patients.topLevelItemCount() == n
    assert f"{n}</b> patients" in view.summary_label.text()
    # thumbnails decoded on worker threads arrive as icons
    qtbot.waitUntil(lambda: view.patients.thumbnails_loaded >= 20, timeout=30000)
    items = [view.patients.topLevelItem(i) for i in range(n)]
    assert sum(not it.icon(0).isNull() for it in items) >= 20
    # the cohort is remembered for the next start
    assert "cohort.csv" in window.settings.value("last_cohort")


def test_mapping_dialog_guesses_and_maps_outcomes(window, qtbot):
    view = window.pages["cohort"]
    view.open_table(str(paths.demo_cohort_table()))
    qtbot.waitUntil(lambda: view.mapping_dialog is not None, timeout=10000)
    dialog = view.mapping_dialog
    assert dialog.combos["patient_id"].currentText() == "patient_id"
    assert dialog.combos["image"].currentText() == "image"
    assert dialog.combos["outcome"].currentText() == "diagnosis"
    assert dialog.outcome_choices() == {"PNEUMONIA": "positive", "NORMAL": "negative"}
    # patients per value, as the page counts them (the demo has infants with several rows)
    _, n_pos, n_neg = _demo_counts()
    rows = read_table(paths.demo_cohort_table())["diagnosis"].value_counts()
    assert rows["PNEUMONIA"] + rows["NORMAL"] > n_pos + n_neg
    counts = {dialog.outcome_table.item(r, 0).text(): dialog.outcome_table.item(r, 1).text()
              for r in range(dialog.outcome_table.rowCount())}  # fmt: skip
    assert counts == {"PNEUMONIA": str(n_pos), "NORMAL": str(n_neg)}
    assert dialog.outcome_table.horizontalHeaderItem(1).text() == "Patients"
    assert dialog.balance_label.text().startswith(
        f"positive: {n_pos} patients · negative: {n_neg} patients"
    )
    # mapped columns are marked in the live preview's header
    assert "Patient ID" in dialog.preview.horizontalHeaderItem(0).text()
    ok = dialog.buttons.button(QDialogButtonBox.Ok)
    # the same column twice is refused with a reason
    dialog.combos["outcome"].setCurrentText("image")
    assert not ok.isEnabled() and "one role" in dialog.message.text()
    dialog.combos["outcome"].setCurrentText("diagnosis")
    # flip the outcome: NORMAL positive, PNEUMONIA excluded -> not both classes
    dialog.set_outcome_choice("PNEUMONIA", "exclude")
    dialog.set_outcome_choice("NORMAL", "positive")
    assert not ok.isEnabled()
    dialog.set_outcome_choice("PNEUMONIA", "negative")
    assert ok.isEnabled()
    qtbot.mouseClick(ok, Qt.LeftButton)
    cohort = _wait_cohort(qtbot, window)
    assert (cohort.n_positive, cohort.n_negative) == (n_neg, n_pos)


def test_problems_name_their_patient(window, qtbot, tmp_path):
    demo = paths.demo_cohort_table().parent
    imgs = sorted((demo / "images" / "NORMAL").iterdir())[:3]
    pos = sorted((demo / "images" / "PNEUMONIA").iterdir())[:3]
    (tmp_path / "img").mkdir()
    rows = ["id;file;bpd"]
    for i, src in enumerate(imgs + pos):
        shutil.copy(src, tmp_path / "img" / src.name)
        rows.append(f"P{i};img/{src.name};{'no BPD' if i < 3 else 'severe'}")
    rows.append("P9;img/missing.png;moderate")  # a file that is not there
    rows.append("P10;img/x.png;keine Angabe")  # outcome not recorded
    table = tmp_path / "cohort.csv"
    table.write_text("\n".join(rows) + "\n", encoding="utf-8")
    view = window.pages["cohort"]
    view.open_table(str(table))
    qtbot.waitUntil(lambda: view.mapping_dialog is not None, timeout=10000)
    assert view.mapping_dialog.outcome_choices() == {
        "no BPD": "negative", "severe": "positive", "moderate": "positive",
        "keine Angabe": "exclude",
    }  # fmt: skip
    qtbot.mouseClick(view.mapping_dialog.buttons.button(QDialogButtonBox.Ok), Qt.LeftButton)
    cohort = _wait_cohort(qtbot, window)
    assert cohort.n_patients == 6
    assert any(p.patient_id == "P9" for p in cohort.problems)
    problems = view.problems
    item = next(
        problems.topLevelItem(i)
        for i in range(problems.topLevelItemCount())
        if problems.topLevelItem(i).text(3) == "P9"
    )
    problems.setCurrentItem(item)
    assert view.patients.selected_patient() == "P9"
    assert "P9" in view.detail.title.text()


def test_unreadable_table_shows_a_message_not_a_traceback(window, qtbot, tmp_path, caplog):
    bad = tmp_path / "broken.csv"
    bad.write_bytes(b"\xd0\xcf\x11\xe0 legacy excel")
    window.pages["cohort"].open_table(str(bad))
    qtbot.waitUntil(lambda: "Cannot read the table" in caplog.text, timeout=10000)
    assert "Traceback" not in caplog.text
    assert window.session.cohort is None


def test_drop_a_table_then_an_images_folder(window, qtbot, tmp_path):
    from PySide6.QtCore import QMimeData, QPoint, QUrl
    from PySide6.QtGui import QDropEvent

    view = window.pages["cohort"]

    def drop(path, target=view):
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(path))])
        event = QDropEvent(QPoint(5, 5), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
        target.dropEvent(event)

    drop(paths.demo_cohort_table(), target=window)  # dropped on the start page
    assert window.current_page() == "cohort"
    qtbot.waitUntil(lambda: view.mapping_dialog is not None, timeout=10000)
    view.mapping_dialog.accept()
    cohort = _wait_cohort(qtbot, window)
    assert cohort.n_images > 0 and not cohort.errors
    # a wrong images folder: every image is missing, and each problem says so
    drop(tmp_path)
    cohort = _wait_cohort(qtbot, window, previous=cohort)
    assert window.session.images_root == str(tmp_path)
    assert cohort.n_patients == 0 and len(cohort.problems) > 0
    assert str(tmp_path) in view.source_label.text()


def test_check_all_images_decodes_off_the_gui_thread(window, qtbot, tmp_path):
    demo = paths.demo_cohort_table().parent
    (tmp_path / "img").mkdir()
    rows = ["id,file,outcome"]
    for i, src in enumerate(sorted((demo / "images" / "NORMAL").iterdir())[:4]):
        shutil.copy(src, tmp_path / "img" / src.name)
        rows.append(f"P{i},img/{src.name},{i % 2}")
    (tmp_path / "img" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    rows.append("P9,img/broken.png,1")
    (tmp_path / "c.csv").write_text("\n".join(rows) + "\n")
    window.session.open_with_guesses(str(tmp_path / "c.csv"))
    cohort = _wait_cohort(qtbot, window)
    assert cohort.n_patients == 5  # the table is fine; decoding has not happened yet
    view = window.pages["cohort"]
    qtbot.mouseClick(view.check_button, Qt.LeftButton)
    checked = _wait_cohort(qtbot, window, previous=cohort)
    assert checked.n_patients == 4
    assert any(p.patient_id == "P9" for p in checked.problems)
    assert view.check_button.isEnabled()
