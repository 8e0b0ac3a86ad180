"""No command writes over its own input or over a file it did not create (without
--force); `bpd predict` predicts every usable row of a table with a bad one and says so
in its exit status (PARTIAL_EXIT). Real demo radiographs, an exported random model."""

from __future__ import annotations

import csv
import shutil

import pytest

from core import paths
from core.cli.main import main
from core.cli.predict_cmd import PARTIAL_EXIT
from tests.core.runfolder_factory import make_run_folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from core.models.export import export_model
    from core.models.registry import create_model

    out = tmp_path_factory.mktemp("model") / "model"
    card = {"preprocessing": {"resolution": 32}, "threshold": 0.5, "init": "random"}
    return export_model(create_model("random", seed=0), out, card=card)


def _demo_images(n):
    table = paths.demo_cohort_table()
    with open(table, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [table.parent / r["image"] for r in rows[:n]]


@pytest.fixture()
def table(tmp_path):
    """Patients A and D with real radiographs, B whose image is missing, C whose file is
    not an image; rows 1-4."""
    good = _demo_images(2)
    for i, src in enumerate(good):
        shutil.copy(src, tmp_path / f"good{i}.jpeg")
    (tmp_path / "broken.png").write_bytes(b"not an image at all")
    path = tmp_path / "cohort.csv"
    path.write_text(
        "patient_id,image\nA,good0.jpeg\nB,missing.png\nC,broken.png\nD,good1.jpeg\n",
        encoding="utf-8",
    )
    return path


def _read(path):
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_predict_never_writes_over_its_input(model_dir, table, tmp_path, capsys):
    before = table.read_bytes()
    link = tmp_path / "link.csv"
    link.symlink_to(table)
    for out in (table, link, tmp_path / "sub" / ".." / "cohort.csv", tmp_path / "good0.jpeg"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        rc = main(["predict", str(model_dir), str(table), "--out", str(out), "--force", "--quiet"])
        assert rc == 2, out
        assert "input of this command" in capsys.readouterr().err
    assert table.read_bytes() == before
    # nor into the model folder it reads
    target = model_dir / "model.json"
    assert main(["predict", str(model_dir), str(table), "--out", str(target), "--force"]) == 2
    assert "which this command reads" in capsys.readouterr().err


def test_predict_needs_force_to_replace_a_file(model_dir, table, tmp_path, capsys):
    out = tmp_path / "pred.csv"
    patients = tmp_path / "pred_patients.csv"
    patients.write_text("somebody else's file\n")
    args = ["predict", str(model_dir), str(table), "--out", str(out), "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "pred_patients.csv" in err and "--force" in err
    assert patients.read_text() == "somebody else's file\n" and not out.exists()
    assert main([*args, "--force"]) == PARTIAL_EXIT
    assert patients.read_text().startswith("patient_id,")
    capsys.readouterr()
    assert main(args) == 2  # its own earlier result too: a second run needs --force
    assert "already exists" in capsys.readouterr().err


def test_predict_lists_bad_rows_and_predicts_the_rest(model_dir, table, tmp_path, capsys):
    out = tmp_path / "pred.csv"
    cams = tmp_path / "cams"
    rc = main(["predict", str(model_dir), str(table), "--out", str(out), "--cam", str(cams),
               "--quiet"])  # fmt: skip
    assert rc == PARTIAL_EXIT
    err = capsys.readouterr().err
    assert "partial result" in err
    assert "row 2" in err and "missing.png" in err and "row 3" in err and "broken.png" in err
    images = {r["patient_id"]: r for r in _read(out)}
    assert set(images) == {"A", "B", "C", "D"}
    for pid in "AD":
        assert 0.0 <= float(images[pid]["prob"]) <= 1.0 and images[pid]["problem"] == ""
        assert images[pid]["cam_png"]
    for pid in "BC":
        assert images[pid]["prob"] == "" and images[pid]["problem"]
    assert images["B"]["row"] == "2" and images["C"]["row"] == "3"
    patients = {r["patient_id"]: r for r in _read(tmp_path / "pred_patients.csv")}
    assert patients["A"]["prob"] == images["A"]["prob"] and patients["B"]["prob"] == ""
    assert patients["C"]["problem"] and patients["C"]["n_images"] == "0"
    assert len(list(cams.iterdir())) == 4  # two usable images, overlay + map each


def test_predict_with_no_usable_image_is_an_error(model_dir, tmp_path, capsys):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"nope")
    out = tmp_path / "pred.csv"
    assert main(["predict", str(model_dir), str(broken), "--out", str(out)]) == 2
    assert str(broken) in capsys.readouterr().err and not out.exists()


def test_report_never_writes_over_the_cohort_table(tmp_path, capsys):
    table = tmp_path / "cohort.csv"
    table.write_text("patient_id,image,diagnosis\n")
    run = make_run_folder(tmp_path / "run", cohort_source={"table": str(table)})
    assert main(["report", str(run), "--html", str(table), "--force"]) == 2
    assert "input of this command" in capsys.readouterr().err
    assert table.read_text() == "patient_id,image,diagnosis\n"
    assert main(["report", str(run), "--html", str(run / "summary.json"), "--force"]) == 2
    other = tmp_path / "mine.html"
    other.write_text("keep")
    assert main(["report", str(run), "--html", str(other)]) == 2
    assert "--force" in capsys.readouterr().err and other.read_text() == "keep"
    assert main(["report", str(run), "--html", str(other), "--force"]) == 0
    assert other.read_text().startswith("<!DOCTYPE html>")
    assert main(["report", str(run)]) == 0  # the run's own report.html: always its to replace
    assert main(["report", str(run)]) == 0
