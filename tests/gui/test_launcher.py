"""`bpd-studio` (bpd_gui.launcher): the app by default, the CLI for a command or --cli,
the self-test for --self-test; the frozen app starts its jobs through itself."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
from pathlib import Path

import pytest

import core.cli.main
from bpd_gui import launcher
from bpd_gui import main as gui_main
from bpd_gui.jobs import job_client

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def calls(monkeypatch):
    """Which main ran with which arguments (neither really runs), and freeze_support."""
    seen: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(multiprocessing, "freeze_support", lambda: seen.append(("freeze", [])))
    monkeypatch.setattr(gui_main, "main", lambda argv: seen.append(("gui", argv)) or 0)
    monkeypatch.setattr(core.cli.main, "main", lambda argv: seen.append(("cli", argv)) or 7)
    return seen


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], ("gui", [])),
        (["--screenshots", "out"], ("gui", ["--screenshots", "out"])),
        (["--no-restore"], ("gui", ["--no-restore"])),
        (["--cli", "-v", "train", "t.csv"], ("cli", ["-v", "train", "t.csv"])),
        (["train", "t.csv", "--outcome", "bpd"], ("cli", ["train", "t.csv", "--outcome", "bpd"])),
        (["env", "--json"], ("cli", ["env", "--json"])),
        (["self-test"], ("cli", ["self-test"])),
        (["--self-test", "--dicom", "x.dcm"], ("cli", ["self-test", "--dicom", "x.dcm"])),
        (["--version"], ("cli", ["--version"])),
    ],
)
def test_mode_and_arguments(calls, argv, expected):
    code = launcher.main(argv)
    assert calls[0] == ("freeze", [])  # before anything else: a frozen child stops there
    assert calls[1:] == [expected]
    assert code == (7 if expected[0] == "cli" else 0)  # the chosen main's exit code


def test_a_word_that_is_no_command_is_refused_with_the_commands(calls, capsys):
    assert launcher.main(["cohort.csv"]) == 2
    err = capsys.readouterr().err
    assert "'cohort.csv' is not a command" in err and "self-test" in err and "train" in err
    assert calls == [("freeze", [])]  # neither the app nor the CLI ran


def test_every_bpd_command_runs_the_cli():
    names = core.cli.main.command_names()
    assert {"train", "resume", "demo", "predict", "report", "env", "self-test"} <= set(names)
    for name in names:
        assert launcher.choose_mode([name, "--help"]) == ("cli", [name, "--help"])


def test_help_names_every_mode(calls, capsys):
    assert launcher.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--cli" in out and "--self-test" in out and "--screenshots" in out
    assert calls == [("freeze", [])]


def test_base_command_is_the_frozen_executable_in_cli_mode(monkeypatch):
    assert job_client.base_command() == [sys.executable, "-m", "core.cli.main"]
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", "/opt/bpd-studio/bpd-studio")
    assert job_client.base_command() == ["/opt/bpd-studio/bpd-studio", "--cli"]
    assert launcher.choose_mode([*job_client.base_command()[1:], "train"])[0] == "cli"


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def test_choosing_a_mode_loads_neither_torch_nor_qt():
    out = _run(
        "import sys; from bpd_gui.launcher import choose_mode\n"
        "assert choose_mode([]) == ('gui', [])\n"
        "assert choose_mode(['train', 'x'])[0] == 'cli'\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'PySide6'}))"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_cli_mode_runs_a_real_command_without_qt():
    # what the frozen app's job processes do: `bpd-studio --cli ...`, here from source
    out = _run(
        "import json, sys; from bpd_gui.launcher import main\n"
        "code = main(['--cli', 'env', '--json'])\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & {'PySide6'})))\n"
        "sys.exit(code)"
    )
    assert out.returncode == 0, out.stderr
    report, qt = out.stdout.strip().splitlines()[-2:]
    assert json.loads(report)["device"] in ("cpu", "cuda", "mps")
    assert json.loads(qt) == []
