"""RunFolder's contract beyond what a training run exercises: readers refuse what is not
a run folder (exit 2, naming it), damaged files are named, and runs are named one way."""

from __future__ import annotations

import re

import pytest

from core.errors import InputError
from core.runs.folder import RunFolder, default_run_dir


def test_readers_refuse_a_folder_that_is_no_run(tmp_path):
    with pytest.raises(InputError, match="no such directory"):
        RunFolder.existing(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not a run folder") as err:
        RunFolder.existing(tmp_path / "empty")
    assert err.value.file == str(tmp_path / "empty")
    assert not RunFolder.looks_like_run(tmp_path / "empty")


def test_a_damaged_record_is_an_input_error_naming_the_file(tmp_path):
    run = RunFolder.create(tmp_path / "run", {"train": {"threshold": 0.3}}, {})
    assert RunFolder.looks_like_run(run.path)
    assert run.threshold_for_new_patients() == 0.3  # no summary yet: the setting
    run.fold("r0-f0").write({"fold_id": "r0-f0", "repeat": 0, "fold": 0, "finished": False})
    assert run.finished_folds() == []  # started, not finished
    broken = run.fold("r0-f1")
    broken.write({})
    (broken.path / "fold.json").write_text('{"fold_id": "r0-f1", "fini', encoding="utf-8")
    with pytest.raises(InputError, match="not valid JSON") as err:
        run.finished_folds()
    assert err.value.file == str(broken.path / "fold.json")
    with pytest.raises(InputError, match=r"has no model\.pt"):
        run.fold_model("r0-f0")


def test_reading_changes_nothing_while_a_run_trains(tmp_path):
    run = RunFolder.create(tmp_path / "run", {"train": {}}, {})
    temp = run.path / ".summary.json.abc.tmp"  # a write in progress (core.atomic)
    temp.write_text("{", encoding="utf-8")
    RunFolder.existing(run.path).summary()
    assert temp.exists()
    RunFolder.open(run.path)  # the writer (resume) clears a killed write's leftovers
    assert not temp.exists()


def test_cli_and_app_name_runs_alike(tmp_path):
    from bpd_gui.jobs.job_queue import new_run_dir

    pattern = r"\d{8}-\d{6}-my-run-1(-\d+)?"
    first = default_run_dir("my run/1", tmp_path)
    assert first.parent == tmp_path and re.fullmatch(pattern, first.name)
    first.mkdir()
    app = new_run_dir(tmp_path, "my run/1")  # the app's slug rule is core's
    assert re.fullmatch(pattern, app.name) and app != first and not app.exists()
    assert default_run_dir("", tmp_path).name.endswith("-run")
