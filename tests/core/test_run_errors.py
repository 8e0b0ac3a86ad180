"""One trainer per run folder (two real processes), and clear errors, exit 2, instead of
tracebacks: missing run folder, a full disk or a read-only / protected place, a damaged
or poisoned checkpoint, output piped into a reader that stops early. Full disk and
read-only are simulated with the OSError the system raises (we run as root: chmod
would not stop us)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.cli.main import main
from core.errors import CheckpointError
from core.runs.folder import FoldFolder, RunFolder
from core.runs.lock import RunBusyError
from tests.core.runfolder_factory import make_run_folder

ROOT = Path(__file__).resolve().parents[2]


def _child(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def test_one_trainer_per_run_folder_across_processes(tmp_path, capsys):
    run = RunFolder.create(tmp_path / "run", {"train": {}}, {})
    stale = run.path / ".state.json.123.tmp"  # a running trainer's write in progress
    stale.write_text("{}")
    child = _child(
        "import sys, time\n"
        "from core.runs.folder import RunFolder\n"
        "RunFolder(sys.argv[1]).lock().acquire()\n"
        "print('locked', flush=True)\n"
        "time.sleep(120)\n",
        str(run.path),
    )
    try:
        assert child.stdout.readline().strip() == "locked"
        assert run.trainer()["pid"] == child.pid
        with pytest.raises(RunBusyError, match=f"process {child.pid}"):
            run.lock().acquire()
        assert main(["resume", str(run.path)]) == 2
        err = capsys.readouterr().err
        assert "still being trained" in err and f"kill {child.pid}" in err
        assert stale.exists()  # the refused resume did not clean up under the trainer
    finally:
        child.send_signal(signal.SIGKILL)  # a crash: the kernel releases the lock
        child.wait()
    assert run.trainer() is None
    with run.lock() as lock:
        assert lock.held and run.trainer() is not None
    assert run.trainer() is None


@pytest.mark.parametrize("command", ["resume", "explain", "report"])
def test_missing_run_folder_is_exit_2(tmp_path, capsys, command):
    missing = tmp_path / "no-such-run"
    extra = ["--all", "--out", str(tmp_path / "x")] if command == "explain" else []
    assert main([command, str(missing), *extra]) == 2
    assert str(missing) in capsys.readouterr().err


@pytest.mark.parametrize(
    "code,expected",
    [(errno.ENOSPC, "the disk is full"), (errno.EROFS, "read-only file system"),
     (errno.EACCES, "permission denied")],
)  # fmt: skip
def test_unwritable_output_is_a_clear_error(tmp_path, capsys, monkeypatch, code, expected):
    import core.atomic

    run = make_run_folder(tmp_path / "run")
    out = tmp_path / "out" / "report.html"

    def refuse(*args, dir=None, **kwargs):
        raise OSError(code, os.strerror(code), str(Path(dir) / "tmpfile"))

    monkeypatch.setattr(core.atomic.tempfile, "mkstemp", refuse)
    assert main(["report", str(run), "--html", str(out)]) == 2
    err = capsys.readouterr().err
    assert expected in err and str(out.parent) in err and "Traceback" not in err


def test_full_disk_mid_write_names_the_file(tmp_path, capsys, monkeypatch):
    """A write that fails half-way (no file name in the OSError) and torch's own report
    of it ('unexpected pos') both become 'the disk is full' naming the file."""
    import shutil

    from core.runs.folder import save_torch

    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10, 10, 0))

    def torch_full(obj, fh):
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", torch_full)
    target = tmp_path / "folds" / "r0-f0" / "model.pt"
    with pytest.raises(OSError) as info:
        save_torch(target, {})
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert not list(target.parent.iterdir())  # no temp file left behind


def test_damaged_or_poisoned_checkpoint_is_refused_without_torch_advice(tmp_path):
    fold = FoldFolder(tmp_path / "run" / "folds" / "r0-f1")
    fold.path.mkdir(parents=True)
    checkpoint = fold.path / "checkpoint.pt"

    class Payload:  # what a hostile checkpoint carries: code run on unpickling
        def __reduce__(self):
            return (os.system, ("true",))

    torch.save({"model": Payload()}, checkpoint)
    for content in (checkpoint.read_bytes(), checkpoint.read_bytes()[:100], b"garbage"):
        checkpoint.write_bytes(content)
        with pytest.raises(CheckpointError) as info:
            fold.load()
        message = str(info.value)
        assert "weights_only" not in message and "--restart-fold" in message
        assert str(tmp_path / "run") in message and "r0-f1" in message
        assert info.value.__suppress_context__  # torch's advice not even in a traceback
    moved = RunFolder(tmp_path / "run").set_aside_damaged_checkpoints()
    assert moved == [fold.path / "checkpoint.pt.damaged"] and fold.load() is None


def test_output_into_a_closed_pipe_ends_quietly(tmp_path):
    a = make_run_folder(tmp_path / "a")
    b = make_run_folder(tmp_path / "b", score_seed=1)
    child = subprocess.Popen(
        [sys.executable, "-m", "core.cli.main", "compare", str(a), str(b), "--json"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    child.stdout.close()  # `| head` that has read enough
    err = child.stderr.read().decode()
    assert child.wait() == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_train_out_naming_an_existing_file_is_exit_2(tmp_path, capsys):
    from core import paths

    existing = tmp_path / "results.txt"
    existing.write_text("keep")
    args = ["train", str(paths.demo_cohort_table()), "--outcome", "diagnosis", "--positive",
            "PNEUMONIA", "--negative", "NORMAL", "--out", str(existing), "--quiet"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert str(existing) in err and "Traceback" not in err
    assert existing.read_text() == "keep"


@pytest.mark.slow
def test_full_disk_while_training_is_exit_2_and_the_run_stays_resumable(
    tmp_path, capsys, monkeypatch
):
    """torch's writer fails the way a full disk makes it fail ('unexpected pos') when the
    first fold's model is saved: exit 2 naming the file, no traceback, lock released."""
    import shutil

    from tests.core.test_final_model import TINY_TRAIN, tiny_table

    monkeypatch.setenv("BPD_STUDIO_HOME", str(tmp_path / "home"))
    table, root = tiny_table(tmp_path, 6)
    real_save = torch.save

    def full_disk_save(obj, fh, *args, **kwargs):
        if "epoch" not in obj:  # a fold's model.pt (the first save: no checkpoint in a minute)
            monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(1, 1, 0))
            raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0")
        return real_save(obj, fh, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk_save)
    run = tmp_path / "run"
    args = ["train", str(table), "--images-root", str(root), "--outcome", "diagnosis",
            "--positive", "PNEUMONIA", "--negative", "NORMAL", *TINY_TRAIN,
            "--out", str(run)]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "the disk is full" in err and "r0-f0" in err and "model.pt" in err
    assert "Traceback" not in err and "resume" in err
    folder = RunFolder(run)
    assert folder.state()["status"] == "failed" and folder.trainer() is None


def test_full_disk_on_the_event_stream_names_it(tmp_path, monkeypatch):
    """Progress events are the most frequent write of a training run, so often the first
    to meet a full disk: the error names events.jsonl."""
    import builtins

    from core.runs.events import EventLog

    log = EventLog(tmp_path / "events.jsonl")
    real_open = builtins.open

    class FullFile:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, text):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(builtins, "open", lambda *a, **k: FullFile(real_open(*a, **k)))
    with pytest.raises(OSError) as info:
        log.emit("warning", message="x")
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(log.path)
