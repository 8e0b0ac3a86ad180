"""The Train page opens on the preset that fits the machine (the real `bpd env`), shows
the init's weights status, asks for a final model and a Youden threshold, loads an
earlier run's settings ("Run again"), says what a starting run does, and plots a cached
probe in a fifth of the axis with a fold picker."""

import shutil
from pathlib import Path

import pytest

from bpd_gui.jobs.run_job import RunJob
from bpd_gui.widgets.plots import EpochScale
from bpd_gui.widgets.run_panel import startup_step
from core import paths
from core.runs.events import read_events_from
from core.runs.folder import RunFolder
from core.runs.run_progress import RunProgress
from core.training.config import TrainConfig
from tests.gui.events_writer import FakeRunWriter

DEMO_FULL = Path(__file__).parents[1] / "data" / "run_folders" / "demo-full"


def test_form_opens_on_the_machines_preset_and_keeps_the_users_choice(window, qtbot):
    train = window.pages["train"]
    qtbot.waitUntil(lambda: train.machine is not None, timeout=60000)  # real `bpd env --json`
    expected = train.machine["suggested_preset"]
    assert expected == ("paper" if train.machine["device"] == "cuda" else "cpu-fast")
    assert train.form.preset.currentText() == expected
    assert f"Suggested preset: <b>{expected}</b>" in train.machine_label.text()
    # a GPU machine: the paper's recipe, unless the user chose something already
    train.form.user_edited = False
    train.apply_machine_defaults({"suggested_preset": "paper", "reason": "a CUDA GPU (X)"})
    assert train.form.preset.currentText() == "paper" and train.form.resolution.value() == 512
    train.form.resolution.setValue(256)  # the user's edit
    train.apply_machine_defaults({"suggested_preset": "cpu-fast", "reason": "2 CPU cores"})
    assert train.form.resolution.value() == 256 and train.form.preset.currentText() == "paper"


def test_init_status_beside_the_choice(window):
    train = window.pages["train"]
    train.weights.rows = {
        "xrv": {"init": "xrv", "present": False, "file_name": "xrv.pt", "url": "u", "path": "p"},
        "imagenet": {"init": "imagenet", "present": True, "file_name": "in.pt", "url": "u",
                     "path": "p"},
    }  # fmt: skip
    train.weights.changed.emit()
    train.form.init.setCurrentText("xrv")
    assert "weights missing" in train.form.init_status.text()
    assert (
        "xrv.pt" in train.form.init_status.toolTip()
        and "Settings" in train.form.init_status.toolTip()
    )
    train.form.init.setCurrentText("imagenet")
    assert "weights here" in train.form.init_status.text()
    train.form.init.setCurrentText("random")
    assert "built in" in train.form.init_status.text()


def test_final_model_and_youden_threshold_reach_the_run_config(window, qtbot):
    window.session.open_with_guesses(str(paths.demo_cohort_table()))
    qtbot.waitUntil(lambda: window.session.cohort is not None, timeout=20000)
    train = window.pages["train"]
    train.form.threshold.setCurrentText("youden")
    train.form.final_model.setChecked(True)
    rc = train.build_run_config()
    assert rc.train.threshold_method == "youden" and rc.options.final_model
    train._on_measured(300.0)
    with_final = train.estimate_label.text()
    train.form.final_model.setChecked(False)
    assert train.estimate_label.text() != with_final  # the final model's time counts


def test_run_again_loads_a_finished_runs_settings(window, studio_home):
    run_dir = studio_home / "runs" / "20260102-030405-demo-full"
    shutil.copytree(DEMO_FULL, run_dir)
    train = window.pages["train"]
    job = train.open_run(run_dir)
    assert train.again_button.isEnabled()
    train.run_again()
    cfg = TrainConfig.from_json(RunFolder(run_dir).config()["train"])
    form = train.form
    assert (form.strategy.currentText(), form.folds.value(), form.repeats.value()) == (
        cfg.strategy, cfg.cv_folds, cfg.cv_repeats)  # fmt: skip
    assert (form.epochs.value(), form.resolution.value(), form.init.currentText()) == (
        cfg.epochs, cfg.resolution, cfg.init)  # fmt: skip
    assert form.config().probe_epochs == cfg.probe_epochs  # kept though the form has no field
    assert form.name.text() == "demo-full" and job.name.endswith("demo-full")


def test_status_line_says_what_a_starting_run_does(tmp_path):
    job = RunJob(tmp_path / "run")
    job.pid = 1  # active
    p = RunProgress(status="running")
    assert "loading PyTorch" in startup_step(job, p)
    writer = FakeRunWriter(tmp_path / "run")
    writer.write_until("run_started")
    p.apply_all(read_events_from(tmp_path / "run" / "events.jsonl", 0)[0])
    assert "splitting them into folds" in startup_step(job, p)
    writer.write_until("fold_started")
    p.apply_all(read_events_from(tmp_path / "run" / "events.jsonl", 0)[0][1:])
    assert startup_step(job, p).startswith("r0-f0: building the model")
    writer.write_until("epoch_started")
    p.apply_all(read_events_from(tmp_path / "run" / "events.jsonl", 0)[0][2:])
    assert "backbone features once" in startup_step(job, p)
    writer.write(1)  # the first batch
    p.apply_all(read_events_from(tmp_path / "run" / "events.jsonl", 0)[0][3:])
    assert startup_step(job, p) == ""
    job.pid = None
    assert startup_step(job, RunProgress(status="running")) == ""


def test_cached_probe_takes_a_fifth_of_the_axis_and_folds_can_be_picked(window, qtbot, tmp_path):
    scale = EpochScale(40, 48)  # cpu-fast: 40 probe epochs, 8 fine-tuning
    assert scale.x(40) / scale.width <= 0.2 + 1e-9 and scale.width == 10
    assert [label for _, label in scale.ticks()][:2] == ["0", "40"]
    assert EpochScale(1, 4).x(1) == 1  # a short probe keeps its own width

    run_dir = tmp_path / "run"
    writer = FakeRunWriter(run_dir, n_epochs=10)  # 2 probe epochs, 8 layer4 epochs
    writer.write()
    progress = RunProgress()
    progress.apply_all(read_events_from(run_dir / "events.jsonl", 0)[0])
    plots = window.pages["train"].panel.plots
    plots.show_progress(progress)
    assert plots.shown_fold == "r0-f1"  # the last fold trained
    picker = [plots.fold_picker.itemText(i) for i in range(plots.fold_picker.count())]
    assert picker[1:] == ["r0-f0", "r0-f1"]
    plots.fold_picker.setCurrentText("r0-f0")
    assert plots.shown_fold == "r0-f0" and "fold r0-f0" in plots.loss_plot.plotItem.titleLabel.text
    assert plots.point_counts()["epoch_loss"] == 10
    x_range = plots.loss_plot.viewRange()[0]
    assert x_range[1] < 10.5  # 2 probe epochs squeezed into one unit + 8 fine-tuning


def test_start_study_uses_the_forms_recipe(window, qtbot, monkeypatch, tmp_path):
    window.session.open_with_guesses(str(paths.demo_cohort_table()))
    qtbot.waitUntil(lambda: window.session.cohort is not None, timeout=20000)
    train = window.pages["train"]
    train.form.load_preset("cpu-fast")
    train.form.resolution.setValue(96)
    started = []
    monkeypatch.setattr(train.study, "start", lambda cfg: started.append(cfg) or tmp_path / "s")
    assert train.start_study() == tmp_path / "s"
    cfg = started[0]
    assert cfg.preset == "cpu-fast" and cfg.train.resolution == 96
    assert len(cfg.arms()) == 15  # 3 inits x 5 strategies, the paper's grid
    assert "15 arms" in train.estimate_label.text()


@pytest.mark.slow  # a real study of one arm: 12 demo patients, 32 px, 2 folds, 1 epoch
def test_a_study_arm_is_followed_and_shown_in_results(window, qtbot, tmp_path):
    from core.study.config import StudyConfig
    from tests.gui.test_training_run import small_demo_table, tiny_form

    table, images_root = small_demo_table(tmp_path)
    window.session.open_with_guesses(str(table), images_root=str(images_root))
    qtbot.waitUntil(lambda: window.session.cohort is not None, timeout=20000)
    train = window.pages["train"]
    tiny_form(train.form)
    train.form.epochs.setValue(1)
    rc = train.build_run_config()
    config = StudyConfig(cohort=rc.cohort, train=rc.train, inits=("random",),
                         strategies=("full",), preset="cpu-fast", report=False)  # fmt: skip
    study_dir = train.study.start(config)
    qtbot.waitUntil(lambda: window.queue.find(study_dir / "arms" / "random-full") is not None,
                    timeout=240000)  # fmt: skip
    qtbot.waitUntil(lambda: not train.study.is_running(), timeout=240000)
    job = window.queue.find(study_dir / "arms" / "random-full")
    qtbot.waitUntil(lambda: job.progress.status == "finished", timeout=30000)
    results = window.pages["results"]
    window.show_page("results")
    results.details.tabs.setCurrentWidget(results.study)
    assert results.study.picker.currentText() == study_dir.name
    assert results.study.table.item(0, 2).text() == "finished"
