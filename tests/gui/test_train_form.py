"""The Train form's tooltips agree with what the form loads (the cpu-fast tooltip once
claimed 6 fine-tuning epochs where the form loaded 8) and cite docs in the repository."""

from pathlib import Path

from bpd_gui.widgets.train_form import TIPS, TrainForm

REPO = Path(__file__).parents[2]


def test_preset_tooltip_states_what_the_form_loads(qtbot):
    form = TrainForm()
    qtbot.addWidget(form)
    form.load_preset("cpu-fast")
    tip = form.preset.toolTip()
    assert f"then {form.epochs.value()} fine-tuning epochs" in tip
    assert f"{form.resolution.value()} px" in tip and f"batch {form.batch_size.value()}" in tip
    assert f"{form.folds.value()} folds × {form.repeats.value()}" in tip
    form.load_preset("paper")
    assert f"{form.epochs.value()} fine-tuning epochs" in form.epochs.toolTip()
    assert f"batch size {form.batch_size.value()}" in form.batch_size.toolTip()


def test_tooltips_cite_documents_that_exist():
    for key, tip in TIPS.items():
        assert "METHOD.md" not in tip and "CONTRACTS" not in tip, key
        for doc in ("docs/method.md", "docs/run-folder.md"):
            if doc in tip:
                assert (REPO / doc).is_file(), (key, doc)
    assert sum("docs/method.md" in tip for tip in TIPS.values()) >= 8


def test_test_folds_option_follows_the_preset_and_reaches_the_config(qtbot):
    form = TrainForm()
    qtbot.addWidget(form)
    form.load_preset("paper")
    assert form.cv_scheme.currentText() == "paper" and form.config().cv_scheme == "paper"
    assert form.config().probe_augment  # the authors' probe
    form.load_preset("cpu-fast")
    assert form.config().cv_scheme == "stratified" and not form.config().probe_augment
    assert "not the paper's augmented probe" in form.preset.toolTip()
    form.cv_scheme.setCurrentText("paper")
    assert form.config().cv_scheme == "paper" and form.user_edited
    assert "never tested" in form.cv_scheme.toolTip()
