"""The mapping dialog's "every other value is negative" tick (the app's --negative-rest)
and its note of which workbook sheet was read."""

from PySide6.QtWidgets import QDialogButtonBox

from core.cohort.mapping import OutcomeMapping
from core.cohort.table import read_table


def _frame(tmp_path):
    table = tmp_path / "cohort.csv"
    rows = ["patient_id,image,BPD grade", "K1,a.png,no BPD", "K2,b.png,severe",
            "K3,c.png,mild", "K4,d.png,moderate", "K5,e.png,Grad 3 (unklar)"]  # fmt: skip
    table.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return read_table(table)


def test_the_tick_counts_excluded_values_negative_and_maps_to_negative_rest(qtbot, tmp_path):
    from bpd_gui.dialogs.mapping_dialog import MappingDialog

    dialog = MappingDialog(_frame(tmp_path))
    qtbot.addWidget(dialog)
    ok = dialog.buttons.button(QDialogButtonBox.Ok)
    dialog.set_outcome_choice("Grad 3 (unklar)", "exclude")
    assert not dialog.negative_rest.isChecked()
    assert dialog.outcome_mapping().negative_rest is False
    assert dialog.outcome_choices()["Grad 3 (unklar)"] == "exclude"

    dialog.negative_rest.setChecked(True)  # every other recorded value: negative
    assert dialog.outcome_choices()["Grad 3 (unklar)"] == "negative"
    mapping = dialog.outcome_mapping()
    assert mapping.negative_rest is True and mapping.classify("Grad 3 (unklar)") == 0
    assert ok.isEnabled()
    # excluding a value while the tick says "negative" is contradictory: refused, with why
    dialog.set_outcome_choice("mild", "exclude")
    assert not ok.isEnabled() and "untick" in dialog.message.text()


def test_a_remembered_negative_rest_mapping_reopens_ticked(qtbot, tmp_path):
    from bpd_gui.dialogs.mapping_dialog import MappingDialog

    prior = OutcomeMapping(("severe", "moderate"), ("no BPD",), negative_rest=True)
    dialog = MappingDialog(_frame(tmp_path), outcome=prior)
    qtbot.addWidget(dialog)
    assert dialog.negative_rest.isChecked()
    assert dialog.outcome_choices()["mild"] == "negative"  # not named, counted negative


def test_the_tick_reaches_the_runs_cohort_source(qtbot, tmp_path):
    """What a run started from the app records: config.json's cohort_source outcome."""
    from bpd_gui.dialogs.mapping_dialog import MappingDialog
    from core.cohort.source import CohortSource

    dialog = MappingDialog(_frame(tmp_path))
    qtbot.addWidget(dialog)
    for ticked in (False, True):
        dialog.negative_rest.setChecked(ticked)
        source = CohortSource.from_mapping(
            "cohort.csv", dialog.column_mapping(), dialog.outcome_mapping()
        )
        assert source.outcome.negative_rest is ticked
        assert source.to_json()["outcome"]["negative_rest"] is ticked
        assert CohortSource.from_json(source.to_json()) == source


def test_the_dialog_names_the_sheet_it_shows(qtbot, tmp_path):
    import openpyxl

    from bpd_gui.dialogs.mapping_dialog import MappingDialog

    book = openpyxl.Workbook()
    book.active.title = "Legende"
    book.active.append(["BPD grade: NIH 2001"])
    data = book.create_sheet("Daten")
    for row in (["patient_id", "image", "BPD grade"], ["K1", "a.png", "severe"]):
        data.append(row)
    book.save(tmp_path / "cohort.xlsx")
    dialog = MappingDialog(read_table(tmp_path / "cohort.xlsx"))
    qtbot.addWidget(dialog)
    assert dialog.sheet_label.text() == (
        "Read from sheet 'Daten' (workbook sheets: 'Legende', 'Daten')"
    )
    csv_dialog = MappingDialog(_frame(tmp_path))  # a CSV: nothing to say
    qtbot.addWidget(csv_dialog)
    assert csv_dialog.sheet_label.text() == "" and csv_dialog.sheet_label.isHidden()
