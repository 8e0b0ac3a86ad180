"""The mapping dialog's "every other value is negative" tick: the app's --negative-rest."""

from PySide6.QtWidgets import QDialogButtonBox

from bpd_gui.jobs.job_client import TrainRequest, train_arguments
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


def test_the_train_command_gets_negative_rest_only_when_ticked():
    base = dict(table="t.csv", outcome="BPD grade", positive=("severe",), negative=("no BPD",))
    assert "--negative-rest" not in train_arguments(TrainRequest(**base), "run")
    args = train_arguments(TrainRequest(**base, negative_rest=True), "run")
    assert "--negative-rest" in args and args[args.index("--negative") + 1] == "no BPD"
