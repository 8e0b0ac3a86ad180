"""`bpd train --final-model`: a model on every patient, exported with its model card;
a killed final-model phase is redone by `bpd resume` without retraining the folds."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from core import paths
from core.cli.main import main

pytestmark = pytest.mark.slow  # real training runs (CI runs them too)


def tiny_table(tmp_path, n_per_class=6, name="tiny.csv", columns=None):
    """The first n normal and n pneumonia patients of the real demo cohort."""
    table = paths.demo_cohort_table()
    with open(table, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    keep = [r for r in rows if r["diagnosis"] == "NORMAL"][:n_per_class]
    keep += [r for r in rows if r["diagnosis"] == "PNEUMONIA"][:n_per_class]
    out = tmp_path / name
    fields = columns or list(rows[0])
    with open(out, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(keep)
    return out, table.parent


TINY_TRAIN = ["--preset", "cpu-fast", "--init", "random", "--resolution", "32", "--folds", "2",
              "--epochs", "1", "--probe-epochs", "2", "--batch-size", "4", "--seed", "5",
              "--quiet"]  # fmt: skip


def train_tiny(tmp_path, *extra, n_per_class=6):
    table, root = tiny_table(tmp_path, n_per_class)
    out = tmp_path / "run"
    args = ["train", str(table), "--images-root", str(root), "--outcome", "diagnosis",
            "--positive", "PNEUMONIA", "--negative", "NORMAL", *TINY_TRAIN, "--out", str(out),
            *extra]  # fmt: skip
    assert main(args) == 0
    return out


@pytest.fixture(scope="module")
def final_run(tmp_path_factory):
    """One tiny run with a final model, shared by the tests of this module."""
    tmp = tmp_path_factory.mktemp("final")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BPD_STUDIO_HOME", str(tmp / "home"))
        yield train_tiny(tmp, "--final-model")


def test_final_model_is_exported_with_its_card(final_run):
    from core.models.export import is_model_dir, load_model_dir

    folder = final_run / "final_model"
    assert is_model_dir(folder) and (folder / "model.torchscript.pt").is_file()
    _, card = load_model_dir(folder)
    summary = json.loads((final_run / "summary.json").read_text())
    assert card["init"] == "random" and card["strategy"] == "probe+progressive"
    assert card["cohort"]["n_patients"] == 12 and card["cohort"]["n_positive"] == 6
    assert card["trained_on"]["patients"] == 12
    assert card["metrics"]["auroc"] == summary["auroc"]
    assert card["preprocessing"]["resolution"] == 32
    assert card["threshold"] == summary["threshold"]["for_new_patients"] == 0.5
    assert "not a medical device" in card["intended_use"]
    assert card["outcome"]["positive"] == ["PNEUMONIA"]
    assert not (final_run / "final_work").exists()  # the resume state is gone
    # events: the final model trains as fold "final", after every CV fold
    events = [json.loads(line) for line in (final_run / "events.jsonl").open()]
    started = [e["fold_id"] for e in events if e["type"] == "fold_started"]
    assert started[-1] == "final" and started.count("final") == 1
    epochs = [e for e in events if e["type"] == "epoch_finished" and e["fold_id"] == "final"]
    assert len(epochs) == 3 and all(e["test_auroc"] is None for e in epochs)
    assert events[-1]["type"] == "run_finished"


def test_train_writes_report(final_run):
    html = (final_run / "report.html").read_text(encoding="utf-8")
    assert "<svg" in html and "auroc" in html.lower()


def test_killed_final_phase_is_redone_by_resume(final_run, tmp_path, monkeypatch):
    monkeypatch.setenv("BPD_STUDIO_HOME", str(tmp_path / "home"))
    run = tmp_path / "copy"
    shutil.copytree(final_run, run)
    # As if killed during the final model's export: card missing, state still running.
    (run / "final_model" / "model.json").unlink()
    state = json.loads((run / "state.json").read_text())
    (run / "state.json").write_text(json.dumps({**state, "status": "running"}))
    fold_models = {p: p.stat().st_mtime_ns for p in run.glob("folds/*/model.pt")}
    assert main(["resume", str(run), "--quiet"]) == 0
    from core.models.export import load_model_dir

    _, card = load_model_dir(run / "final_model")
    assert card["trained_on"]["patients"] == 12
    assert {p: p.stat().st_mtime_ns for p in run.glob("folds/*/model.pt")} == fold_models
    assert json.loads((run / "state.json").read_text())["status"] == "finished"


def test_demo_writes_report_and_prints_its_path(tmp_path, studio_home, capsys, monkeypatch):
    """`bpd demo` ends with report.html (run on a tiny recipe: the demo's own preset is
    minutes long, so the test shrinks it through the preset function)."""
    from core.training import config as config_module

    tiny = config_module.cpu_fast_preset().replace(
        resolution=32, cv_folds=2, epochs=1, probe_epochs=2, batch_size=4
    )
    monkeypatch.setitem(config_module.PRESETS, "cpu-fast", lambda: tiny)
    table, root = tiny_table(tmp_path, 5)
    for row in csv.DictReader(table.open(encoding="utf-8")):  # images beside the table
        (tmp_path / row["image"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / row["image"], tmp_path / row["image"])
    monkeypatch.setattr(paths, "demo_cohort_table", lambda: table)
    out = tmp_path / "demo"
    assert main(["demo", "--init", "random", "--out", str(out), "--quiet"]) == 0
    assert f"report: {out / 'report.html'}" in capsys.readouterr().out
    assert (out / "report.html").is_file()


def test_no_report_flag(tmp_path, studio_home):
    run = train_tiny(tmp_path, "--no-report", n_per_class=4)
    assert not (run / "report.html").exists()
    assert json.loads((run / "config.json").read_text())["options"]["report"] is False


def test_column_mapping_flags_are_recorded_and_used(tmp_path, studio_home, capsys):
    """Headers nothing can guess: --patient-col/--image-col make the table usable, and
    config.json keeps them for resume, explain and predict."""
    table, root = tiny_table(tmp_path, 4)
    text = table.read_text(encoding="utf-8").splitlines()
    text[0] = "K,F,diagnosis"
    table.write_text("\n".join(text) + "\n", encoding="utf-8")
    base = ["train", str(table), "--images-root", str(root), "--outcome", "diagnosis",
            "--positive", "PNEUMONIA", "--negative", "NORMAL", *TINY_TRAIN,
            "--no-report"]  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "unmapped")]) == 2
    assert "no patient id column" in capsys.readouterr().err
    out = tmp_path / "mapped"
    assert main([*base, "--patient-col", "K", "--image-col", "F", "--out", str(out)]) == 0
    source = json.loads((out / "config.json").read_text())["cohort_source"]
    assert source["mapping"]["patient_id"] == "K" and source["mapping"]["image"] == "F"
    from core.explain.oof import RunExplainer

    ex = RunExplainer.open(out)  # re-reads the table through the recorded mapping
    first = ex.folds["r0-f0"]["test_patients"][0]
    assert ex.patient_images(first)[0].is_file()
    # bpd predict reads a table with the same headers through the recorded columns
    pred = tmp_path / "pred.csv"
    assert main(["predict", str(out), str(table), "--images-root", str(root), "--out",
                 str(pred), "--quiet"]) == 0  # fmt: skip
    assert len(pred.read_text().splitlines()) == 1 + 8
