"""Every CSV the project writes is spreadsheet-safe (OWASP CSV injection) and reads back
exactly what was written."""

from __future__ import annotations

import csv

import pytest

from core.csv_cells import csv_text, read_csv, safe_cell, write_csv
from core.runs.folder import PREDICTION_FIELDS, FoldFolder

HOSTILE = ['=HYPERLINK("http://x","y")', "+1+2", "-2+3", "@SUM(A1)", "\tx", "\rx", "'=x", "'"]


@pytest.mark.parametrize("text", HOSTILE)
def test_formula_text_is_escaped_and_reads_back(tmp_path, text):
    path = write_csv(
        tmp_path / "p.csv", [{"patient_id": text, "prob": 0.25}], ["patient_id", "prob"]
    )
    with open(path, encoding="utf-8", newline="") as fh:
        raw = next(csv.DictReader(fh))
    # what a spreadsheet sees: a leading quote, so the cell is text, not a formula
    assert raw["patient_id"].startswith("'")
    assert read_csv(path) == [{"patient_id": text, "prob": "0.25"}]


@pytest.mark.parametrize("value", [-1.2345678901234567, -3, "-1.23", "+4", "-1e-05", "PT 1", ""])
def test_numbers_and_plain_text_stay_as_they_are(value):
    expected = repr(value) if isinstance(value, float) else value
    assert safe_cell(value) == expected


def test_numpy_floats_are_written_as_numbers():
    import numpy as np

    text = csv_text([{"a": np.float64(-0.5), "b": np.float32(0.25), "c": np.int64(3)}], "abc")
    assert text == "a,b,c\n-0.5,0.25,3\n"


def test_fold_predictions_round_trip_hostile_ids_and_negative_logits(tmp_path):
    fold = FoldFolder(tmp_path)
    rows = [
        {
            "patient_id": "=cmd|' /C calc'!A0",
            "label": 1,
            "prob": 0.1,
            "logit": -2.1972245773362196,
            "repeat": 0,
            "fold": 1,
        },
        {"patient_id": "-5", "label": 0, "prob": 0.9, "logit": 2.2, "repeat": 0, "fold": 1},
    ]
    fold.write_predictions(rows)
    text = (tmp_path / "predictions.csv").read_text(encoding="utf-8")
    assert "\n'=cmd|" in text and ",-2.1972245773362196," in text
    back = fold.read_predictions()
    assert [r["patient_id"] for r in back] == ["=cmd|' /C calc'!A0", "-5"]
    assert [float(r["logit"]) for r in back] == [-2.1972245773362196, 2.2]
    assert list(back[0]) == list(PREDICTION_FIELDS)
