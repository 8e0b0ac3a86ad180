"""`core` stays headless: importing it (and the CLI) must not load Qt or the app."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("PySide6", "pyqtgraph", "bpd_gui", "shiboken6")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sys.modules))"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(out.split())


def test_core_imports_no_qt():
    mods = _modules_after(
        "import pkgutil, importlib, core\n"
        "for m in pkgutil.walk_packages(core.__path__, 'core.'):\n"
        "    importlib.import_module(m.name)"
    )
    leaked = sorted(m for m in mods if m.split(".")[0] in FORBIDDEN)
    assert not leaked, f"core pulled in GUI modules: {leaked}"


def test_cli_import_path_is_headless():
    mods = _modules_after("from core.cli.main import build_parser; build_parser()")
    leaked = sorted(m for m in mods if m.split(".")[0] in FORBIDDEN)
    assert not leaked, f"the CLI pulled in GUI modules: {leaked}"


def test_no_core_source_mentions_qt():
    for path in (ROOT / "core").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for name in FORBIDDEN:
            assert f"import {name}" not in text and f"from {name}" not in text, path


def test_cli_parser_does_not_load_torch():
    # `bpd --help`, `bpd cohort check` and the app's child processes start fast only if
    # command modules import torch lazily, inside the commands that need it.
    mods = _modules_after("from core.cli.main import build_parser; build_parser()")
    assert "torch" not in mods
