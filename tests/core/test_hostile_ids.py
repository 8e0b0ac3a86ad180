"""Patient ids a spreadsheet would run as formulas, or that sanitise to the same file
name, through a real tiny training run on demo radiographs: every CSV written escapes
them and reads them back, `bpd explain` gives each infant its own picture, and a cohort
this small carries its caveat."""

from __future__ import annotations

import csv

import pytest

from core.cli.main import main
from tests.core.test_final_model import TINY_TRAIN, tiny_table

HOSTILE = ['=HYPERLINK("http://x")', "PT 1", "PT-1", "PT/1", "@SUM(A1)", "+A1"]


def _rows(path):
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_hostile_ids_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BPD_STUDIO_HOME", str(tmp_path / "home"))
    table, root = tiny_table(tmp_path, 6)
    rows = _rows(table)
    ids = list(dict.fromkeys(r["patient_id"] for r in rows))
    rename = dict(zip(ids[:3] + ids[-3:], HOSTILE, strict=True))  # both outcomes
    with open(table, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**r, "patient_id": rename.get(r["patient_id"], r["patient_id"])}
                         for r in rows)  # fmt: skip
    run = tmp_path / "run"
    assert main(["train", str(table), "--images-root", str(root), "--outcome", "diagnosis",
                 "--positive", "PNEUMONIA", "--negative", "NORMAL", *TINY_TRAIN,
                 "--out", str(run)]) == 0  # fmt: skip
    assert "caveat: Too few patients" in capsys.readouterr().out

    raw = {r["patient_id"] for r in _rows(run / "predictions.csv")}  # what a spreadsheet sees
    for hostile in ('=HYPERLINK("http://x")', "@SUM(A1)", "+A1"):
        assert "'" + hostile in raw and hostile not in raw
    assert {"PT 1", "PT-1", "PT/1"} <= raw
    from core.runs.folder import RunFolder

    assert set(HOSTILE) <= {r["patient_id"] for r in RunFolder(run).predictions()}

    out = tmp_path / "explained"
    assert main(["explain", str(run), "--patients", *HOSTILE, "--out", str(out)]) == 0
    index = _rows(out / "index.csv")
    assert [r["patient_id"].removeprefix("'") for r in index] == [
        h.removeprefix("'") for h in HOSTILE
    ]  # as written: escaped where a spreadsheet would run it
    pngs = [r["png"] for r in index]
    assert len(set(pngs)) == len(HOSTILE)  # "PT 1", "PT-1", "PT/1": three pictures
    assert all((out / p).is_file() for p in pngs)
    assert main(["explain", str(run), "--patients", "PT 1", "--out", str(out)]) == 2

    assert main(["report", str(run)]) == 0
    html = (run / "report.html").read_text(encoding="utf-8")
    assert "=HYPERLINK(&quot;http://x&quot;)" in html and "Too few patients" in html
