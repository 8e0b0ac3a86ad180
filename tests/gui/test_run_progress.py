"""RunProgress built from real-schema events: plots' numbers, resume replays, failures."""

from bpd_gui.jobs.run_progress import describe_config, format_duration
from core.runs.events import parse_event
from core.runs.events import read_events_from as read_new_events
from core.runs.run_progress import RunProgress
from tests.gui.events_writer import FakeRunWriter


def test_progress_from_a_whole_run(tmp_path):
    writer = FakeRunWriter(tmp_path / "run")
    writer.write()
    events, offset = read_new_events(tmp_path / "run" / "events.jsonl", 0)
    assert offset == (tmp_path / "run" / "events.jsonl").stat().st_size
    p = RunProgress()
    p.apply_all(events)
    assert p.status == "finished"
    assert p.n_folds_finished() == 2
    assert p.fraction_done() == 1.0
    mean = p.mean_auroc_by_epoch()
    assert [ep for ep, _, _ in mean] == [0, 1, 2, 3]
    assert abs(mean[0][1] - 0.51) < 1e-9 and mean[0][2] == 2  # (0.50 + 0.52) / 2
    assert p.phase_marks() == [(0, "probe"), (2, "layer4")]
    assert len(p.folds["r0-f0"].batch_losses) == 12
    assert p.summary["auroc"]["mean"] == 0.71


def test_partial_line_waits_for_its_newline(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"type": "warning", "seq": 0, "message": "a"}\n{"type": "warn')
    events, offset = read_new_events(path, 0)
    assert [e.message for e in events] == ["a"]
    with open(path, "a") as fh:
        fh.write('ing", "seq": 1, "message": "b"}\n')
    more, offset2 = read_new_events(path, offset)
    assert [e.message for e in more] == ["b"] and offset2 == path.stat().st_size


def test_resume_replays_an_epoch_and_clears_the_failure(tmp_path):
    writer = FakeRunWriter(tmp_path / "run", folds=("r0-f0",), n_epochs=3, n_batches=2)
    writer.write_until("epoch_finished")
    writer.log.emit("run_failed", error="out of memory", traceback="Traceback ...")
    p = RunProgress()
    p.apply_all(read_new_events(writer.log.path, 0)[0])
    assert p.status == "failed" and p.error == "out of memory"
    # resume: a new run_started, epoch 0 is not redone, epoch 1 again from its start
    writer.log.emit("run_started", run_id="run", run_dir="x", n_folds_total=1, n_patients=20,
                    n_positive=10, config={})  # fmt: skip
    writer.write()
    p2 = RunProgress()
    p2.apply_all(read_new_events(writer.log.path, 0)[0])
    assert p2.status == "finished" and p2.error is None
    assert sorted(p2.folds["r0-f0"].epochs) == [0, 1, 2]


def test_format_duration():
    assert format_duration(None) == "unknown"
    assert format_duration(42) == "42 s"
    assert format_duration(125) == "2 min 05 s"
    assert format_duration(3 * 3600 + 60) == "3 h 01 min"


def test_a_folds_final_auroc_is_plotted_at_its_last_epoch(tmp_path):
    writer = FakeRunWriter(tmp_path / "run", folds=("r0-f0",), n_epochs=2, n_batches=1)
    events = [(t, dict(f)) for t, f in writer.steps]
    for t, f in events:  # as with eval_every_epoch off: no per-epoch AUROC
        if t == "epoch_finished":
            f["test_auroc"] = None
    p = RunProgress()
    p.apply_all([parse_event({"type": t, **f}) for t, f in events])
    assert p.folds["r0-f0"].epochs[0].test_auroc is None
    assert p.folds["r0-f0"].epochs[1].test_auroc == 0.7  # fold_finished metrics
    assert p.mean_auroc_by_epoch() == [(1, 0.7, 1)]


def test_describe_config_of_the_paper_preset():
    from core.training.config import paper_preset

    text = describe_config(paper_preset().to_json())
    assert text == (
        "xrv init · probe+progressive + CutMix · 5 folds × 6 · 10 probe + 20 epochs · "
        "512 px · batch 8"
    )


def test_final_model_phase_is_not_counted_as_a_fold(tmp_path):
    writer = FakeRunWriter(tmp_path / "run")
    writer.write()
    writer.log.emit("fold_started", fold_id="final", repeat=None, fold=None, n_train=9, n_test=0)
    writer.log.emit("fold_finished", fold_id="final", metrics={})
    events, _ = read_new_events(tmp_path / "run" / "events.jsonl", 0)
    p = RunProgress()
    p.apply_all(events)
    assert p.n_folds_finished() == 2
