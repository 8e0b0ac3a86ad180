"""RunConfig: the one object that starts a run. Round trip to JSON, config.json files of
the current on-disk format load unchanged, and `bpd train --config` takes a whole run
config (no table argument) or a bare TrainConfig, with flags overriding either."""

import argparse
import json
import os
from pathlib import Path

import pytest

from core.cli.main import build_parser
from core.cli.train_options import run_config_from_args
from core.cohort.loader import load_source
from core.cohort.preprocess import PreprocessConfig
from core.cohort.source import CohortSource, OutcomeSpec
from core.errors import InputError
from core.paths import demo_cohort_table
from core.runs.run_config import RunConfig, RunOptions, read_config_file
from core.training.config import preset

DATA = Path(__file__).parents[1] / "data"
WRITTEN_BY_0_1 = DATA / "run_configs" / "config-0.1.0.json"  # a real run's config.json


def demo_config(**cohort) -> RunConfig:
    source = CohortSource(
        str(demo_cohort_table()), OutcomeSpec("diagnosis", ("PNEUMONIA",), ("NORMAL",)), **cohort
    )
    return RunConfig(preset("cpu-fast").replace(resolution=32), source, RunOptions(True, False))


def test_round_trip_through_json_and_a_file(tmp_path):
    rc = demo_config(patient_column="patient_id", image_column="image", clinical_columns={},
                     sheet=None)  # fmt: skip
    assert RunConfig.from_json(json.loads(json.dumps(rc.to_json()))) == rc
    assert read_config_file(rc.write(tmp_path / "run.json")) == rc
    data = rc.to_json()
    assert data["seed"] == rc.train.seed == 42
    assert data["preprocess"] == {"resolution": 32, "center_crop": None}
    assert data["cohort_source"]["mapping"]["patient_id"] == "patient_id"
    assert data["options"] == {"final_model": True, "report": False}
    with pytest.raises(AttributeError):  # frozen
        rc.train = preset("paper")
    cropped = rc.replace(image_preprocess=PreprocessConfig(32, center_crop=0.9))
    assert RunConfig.from_json(cropped.to_json()).preprocess == PreprocessConfig(32, 0.9)
    with pytest.raises(InputError, match="resolution"):
        rc.replace(image_preprocess=PreprocessConfig(64))


def test_a_config_json_of_the_current_format_loads_and_writes_back_the_same_keys():
    old = json.loads(WRITTEN_BY_0_1.read_text())
    rc = RunConfig.from_json(old)
    assert rc.train.resolution == 64 and rc.seed == 5 and rc.created == old["created"]
    assert rc.cohort.outcome == OutcomeSpec("diagnosis", ("PNEUMONIA",), (), True)
    assert rc.options == RunOptions(final_model=False, report=False)
    again = rc.to_json()
    assert set(again) == set(old)
    for key in ("train", "versions", "seed", "created", "options", "preprocess"):
        assert again[key] == old[key], key
    # the same cohort keys; what later versions added ("sheet", "negative_rest") is explicit
    src = again["cohort_source"]
    assert {k: v for k, v in src.items() if k != "sheet"} | {"outcome": old["cohort_source"][
        "outcome"]} == old["cohort_source"]  # fmt: skip
    assert src["outcome"]["negative_rest"] is True  # an empty negative list meant "the rest"


def test_a_recorded_column_mapping_is_read_exactly():
    mapping = {"patient_id": "Pat-Nr", "image": None, "outcome": "BPD", "gestational_age": "SSW",
               "birth_weight": None, "irds": "IRDS", "sex": None}  # fmt: skip
    recorded = {
        "table": "/x/t.csv", "images_root": "/x/img", "mapping": mapping,
        "image_pattern": "{patient_id}_*.png",
        "outcome": {"column": "BPD", "positive": ["3"], "negative": ["0", "1"]},
    }  # fmt: skip
    source = CohortSource.from_json(recorded)
    assert source.is_complete and source.image_column is None
    assert source.clinical_columns == {"gestational_age": "SSW", "irds": "IRDS"}
    assert source.to_json()["mapping"] == mapping
    assert source.outcome.negative_rest is False


def parse(*argv):
    args = build_parser().parse_args(["train", *argv])
    assert isinstance(args, argparse.Namespace)
    return args


def test_train_config_flag_takes_a_whole_run_config(tmp_path, capsys):
    path = demo_config().write(tmp_path / "run.json")
    rc = run_config_from_args(parse("--config", str(path), "--epochs", "3", "--no-report"))
    assert "a run config" in capsys.readouterr().err
    assert rc.cohort == demo_config().cohort  # no table argument needed
    assert rc.train == demo_config().train.replace(epochs=3)  # flags override
    assert rc.options == RunOptions(final_model=True, report=False)


def test_relative_paths_in_a_run_config_are_relative_to_its_folder(tmp_path, capsys):
    demo, folder = demo_cohort_table(), tmp_path / "configs"
    folder.mkdir()
    relative = demo_config().cohort.replace(
        table=os.path.relpath(demo, folder), images_root=os.path.relpath(demo.parent, folder)
    )
    path = demo_config().replace(cohort=relative).write(folder / "run.json")
    loaded = run_config_from_args(parse("--config", str(path)))
    assert loaded.cohort.table == str(demo.resolve())
    assert loaded.cohort.images_root == str(demo.parent.resolve())


def test_train_config_flag_still_takes_a_bare_train_config(tmp_path, capsys):
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(preset("cpu-fast").replace(cv_folds=3).to_json()))
    table = str(demo_cohort_table())
    rc = run_config_from_args(parse(table, "--outcome", "diagnosis", "--positive", "PNEUMONIA",
                                    "--negative", "NORMAL", "--config", str(path)))  # fmt: skip
    assert "a training config" in capsys.readouterr().err
    assert rc.train.cv_folds == 3 and rc.train.resolution == 128
    assert rc.cohort.table == str(Path(table).resolve())
    assert rc.cohort.outcome == OutcomeSpec("diagnosis", ("PNEUMONIA",), ("NORMAL",))
    with pytest.raises(InputError, match="give the cohort table"):
        run_config_from_args(parse("--config", str(path)))


def test_column_flags_are_completed_from_the_header_and_load(tmp_path):
    table = str(demo_cohort_table())
    rc = run_config_from_args(parse(
        table, "--outcome", "diagnosis", "--positive", "PNEUMONIA", "--negative", "NORMAL",
        "--patient-col", "patient_id",
    ))  # fmt: skip
    assert rc.cohort.is_complete and rc.cohort.image_column == "image"
    cohort = load_source(rc.cohort)
    assert cohort.n_patients == 163 and cohort.n_positive == 60


def test_a_bad_config_file_names_the_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"train": {"epochs": 3, "colour": 1}, "cohort_source": {"table": "t"}}')
    with pytest.raises(InputError, match="colour") as err:
        read_config_file(path)
    assert err.value.file == str(path)


def test_a_run_needs_a_named_outcome_column_and_positive_values():
    table = str(demo_cohort_table())
    for outcome, match in ((None, "outcome column"), (OutcomeSpec("", ("PNEUMONIA",)), "--outcome"),
                           (OutcomeSpec("diagnosis", ()), "--positive")):  # fmt: skip
        with pytest.raises(InputError, match=match):
            RunConfig(preset("cpu-fast"), CohortSource(table, outcome))
    # cohort check may leave both to the table: the loader lists the values it found
    with pytest.raises(InputError, match="values in column 'diagnosis'"):
        load_source(CohortSource(table, OutcomeSpec("", ())))
