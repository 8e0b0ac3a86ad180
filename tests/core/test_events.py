"""Typed events: a real events.jsonl written before the types existed still parses, the
writer is held to the schema, readers tolerate what a newer writer adds, and the one
progress reducer (CLI and app) gives the run's numbers."""

import json
import shutil
from pathlib import Path

import pytest

from core.runs import events as ev
from core.runs.run_progress import RunProgress

V1_STREAM = Path(__file__).parents[1] / "data" / "events" / "demo-2folds-v1.jsonl"


def test_a_real_version_1_stream_parses_into_typed_events():
    events, offset = ev.read_events_from(V1_STREAM, 0)
    assert offset == V1_STREAM.stat().st_size
    assert len(events) == 52 and not any(isinstance(e, ev.UnknownEvent) for e in events)
    assert [e.seq for e in events] == list(range(52))
    assert all(e.schema == 1 for e in events)  # lines without "schema" are version 1
    started = events[0]
    assert isinstance(started, ev.RunStarted)
    assert (started.n_folds_total, started.n_patients, started.n_positive) == (2, 163, 60)
    assert started.runtime["device"] == "cpu" and started.config["resolution"] == 64
    finished = [e for e in events if isinstance(e, ev.FoldFinished)]
    assert [f.fold_id for f in finished] == ["r0-f0", "r0-f1"]
    assert all(0.0 <= f.metrics["auroc"] <= 1.0 for f in finished)
    assert isinstance(events[-1], ev.RunFinished) and events[-1].summary["n_patients"] == 163


def test_the_shared_reducer_on_the_real_stream():
    p = RunProgress()
    p.apply_all(ev.read_events_from(V1_STREAM, 0)[0])
    assert p.status == "finished" and p.n_folds_total == 2 and p.n_folds_finished() == 2
    assert p.fraction_done() == 1.0 and p.eta_s == 0.0
    summary = json.loads(V1_STREAM.read_text().splitlines()[-1])["summary"]
    assert p.summary == summary
    fold = p.folds["r0-f1"]
    assert sorted(fold.epochs) == [0, 1, 2] and fold.n_epochs == 3
    assert [ph for _, ph in sorted(fold.phase_starts.items())] == ["probe", "layer2"]
    assert p.current_step() == "r0-f1 epoch 3/3 layer2"
    # the fold's final AUROC is plotted at its last epoch (not scored per epoch)
    assert fold.epochs[2].test_auroc == pytest.approx(fold.metrics["auroc"])


def test_a_written_stream_round_trips_with_its_schema_version(tmp_path):
    log = ev.EventLog(tmp_path / "events.jsonl")
    log.emit("fold_started", fold_id="r0-f0", repeat=0, fold=0, n_train=8, n_test=2)
    log.emit("progress", done=3.0, total=10.0, eta_s=None)
    lines = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [line["schema"] for line in lines] == [ev.SCHEMA_VERSION] * 2
    assert lines[1] == {
        "type": "progress", "time": lines[1]["time"], "seq": 1, "schema": ev.SCHEMA_VERSION,
        "done": 3.0, "total": 10.0, "eta_s": None,
    }  # fmt: skip
    again, _ = ev.read_events_from(tmp_path / "events.jsonl", 0)
    assert again[0] == ev.FoldStarted(time=lines[0]["time"], seq=0, fold_id="r0-f0", repeat=0,
                                      fold=0, n_train=8, n_test=2)  # fmt: skip
    # a second log on the same file continues the sequence (resume)
    assert ev.EventLog(tmp_path / "events.jsonl").emit("warning", message="x").seq == 2


def test_the_writer_is_held_to_the_schema(tmp_path):
    log = ev.EventLog(tmp_path / "events.jsonl")
    with pytest.raises(ValueError, match="unknown event type"):
        log.emit("epoch_done", fold_id="r0-f0")
    with pytest.raises(ValueError, match="fold_started"):
        log.emit("fold_started", fold_id="r0-f0")  # repeat, fold, n_train, n_test missing
    with pytest.raises(ValueError, match="unexpected keyword"):
        log.emit("warning", message="m", colour="red")
    assert not (tmp_path / "events.jsonl").exists() or not (tmp_path / "events.jsonl").read_text()


def test_readers_tolerate_a_newer_writer_and_a_cut_line(tmp_path):
    path = tmp_path / "events.jsonl"
    shutil.copy(V1_STREAM, path)
    newer = [
        {"type": "warning", "time": 1.0, "seq": 52, "schema": 2, "message": "m", "level": "x"},
        {"type": "gpu_memory", "time": 2.0, "seq": 53, "schema": 2, "bytes": 10},
        {"type": "fold_started", "seq": 54, "fold_id": "r0-f2"},  # lacks required fields
    ]
    with open(path, "a") as fh:
        fh.writelines(json.dumps(e) + "\n" for e in newer)
        fh.write('{"type": "progress", "done": 1')  # cut short by a kill
    events, offset = ev.read_events_from(path, V1_STREAM.stat().st_size)
    assert offset == path.stat().st_size - len('{"type": "progress", "done": 1')
    assert isinstance(events[0], ev.RunWarning) and events[0].message == "m"
    assert events[0].schema == 2
    unknown = events[1]
    assert isinstance(unknown, ev.UnknownEvent) and unknown.type == "gpu_memory"
    assert unknown.data == {"bytes": 10}
    assert len(events) == 2  # the malformed fold_started is skipped, not guessed
    p = RunProgress()
    p.apply_all(ev.read_events_from(path, 0)[0])
    assert p.status == "finished" and p.warnings == ["m"]


def test_a_capped_read_stops_at_a_whole_line():
    events, offset = ev.read_events_from(V1_STREAM, 0, max_bytes=4000)
    assert 0 < offset <= 4000 and V1_STREAM.read_bytes()[offset - 1 : offset] == b"\n"
    rest, end = ev.read_events_from(V1_STREAM, offset)
    assert [e.seq for e in events + rest] == list(range(52)) and end == V1_STREAM.stat().st_size


def test_the_cli_progress_printer_reads_the_same_reducer(capsys):
    from core.cli.train_cmd import EventPrinter

    printer = EventPrinter()
    for event in ev.read_events_from(V1_STREAM, 0)[0]:
        printer.on_event(event)
    printer.close()
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("fold ")]
    aurocs = {f.fold_id: f.metrics["auroc"] for f in printer.progress.folds.values()}
    assert lines == [f"fold r0-f0 (1/2): AUROC {aurocs['r0-f0']:.3f}",
                     f"fold r0-f1 (2/2): AUROC {aurocs['r0-f1']:.3f}"]  # fmt: skip
    assert "r0-f0 epoch 1/3 probe" in err  # the bar notes where the run is
