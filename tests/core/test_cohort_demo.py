"""The shipped demo cohort and `bpd cohort check` (real radiographs, resources/demo_cohort)."""

import json

from core import paths
from core.cli.main import main
from core.cohort.cache import ImageCache
from core.cohort.loader import load_cohort
from core.cohort.prepare import prepare_images
from core.cohort.preprocess import PreprocessConfig


def test_demo_cohort_counts_through_a_process_pool(tmp_path):
    table = paths.demo_cohort_table()
    cohort = load_cohort(
        table, outcome_column="diagnosis", positive=["PNEUMONIA"], negative=["NORMAL"]
    )
    assert (cohort.n_patients, cohort.n_images) == (163, 245)
    assert (cohort.n_positive, cohort.n_negative) == (60, 103)
    assert cohort.negative_values == ("NORMAL",)

    cache = ImageCache(tmp_path / "cache")
    prepared = prepare_images(cohort, PreprocessConfig(resolution=32), cache, workers=2)
    final = prepared.cohort
    assert (final.n_patients, final.n_images, final.n_positive) == (163, 245, 60)
    assert prepared.pixels.shape == (245, 32, 32)
    assert prepared.labels.sum() == 60 and len(prepared.labels) == 163
    assert (prepared.image_rank == 0).sum() == 163
    assert not final.errors
    # The source data set holds one byte-identical pair of files for patient P1349.
    (dup,) = final.warnings
    assert dup.reason == "duplicate_image" and dup.patient_id == "P1349"

    again = prepare_images(cohort, PreprocessConfig(resolution=32), ImageCache(tmp_path / "cache"))
    assert again.n_decoded == 0


def test_cli_check_on_the_demo_cohort(studio_home, capsys):
    code = main(["cohort", "check", str(paths.demo_cohort_table()), "--outcome", "diagnosis",
                 "--positive", "PNEUMONIA", "--negative", "NORMAL",
                 "--resolution", "32"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "patients:   163 (60 positive / 103 negative)" in out
    assert "images:     245" in out and "usable:     yes" in out
    assert (studio_home / "cache").is_dir()  # decoded through the cache


def test_cli_json(studio_home, capsys):
    code = main(["cohort", "check", str(paths.demo_cohort_table()), "--positive", "PNEUMONIA",
                 "--negative-rest", "--no-decode", "--json"])  # fmt: skip
    summary = json.loads(capsys.readouterr().out)["summary"]
    assert code == 0 and summary["n_patients"] == 163 and summary["outcome_column"] == "diagnosis"
    assert summary["negative_values"] == ["NORMAL"] and summary["negative_rest"] is True
    assert summary["sheet"] is None  # a CSV has no sheets


def test_cli_exit_2_when_not_usable(studio_home, tmp_path, capsys):
    demo = paths.demo_cohort_table()
    lines = demo.read_text().splitlines()
    only_positive = [lines[0], *[ln for ln in lines[1:] if ln.endswith("PNEUMONIA")]]
    table = tmp_path / "only_positive.csv"
    table.write_text("\n".join(only_positive[:6]) + "\n")
    code = main(["cohort", "check", str(table), "--images-root", str(demo.parent),
                 "--positive", "PNEUMONIA", "--no-decode"])  # fmt: skip
    assert code == 2 and "usable:     NO" in capsys.readouterr().out


def test_cli_exit_2_for_unreadable_table(studio_home, tmp_path, capsys):
    table = tmp_path / "broken.xlsx"
    table.write_bytes(b"PK\x03\x04 not really a workbook")
    assert main(["cohort", "check", str(table), "--positive", "x"]) == 2
    err = capsys.readouterr().err
    assert "broken.xlsx" in err and "XLSX" in err
    assert main(["cohort", "check", str(tmp_path / "missing.csv"), "--positive", "x"]) == 2
