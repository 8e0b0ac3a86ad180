"""The test run's hang watchdog (tests/conftest.py) ends a test that blocks while holding
the GIL, which no Python-level timeout can interrupt, and prints where it was."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_test_that_blocks_holding_the_gil_ends_the_run_with_its_stack(tmp_path):
    hung = tmp_path / "test_hung.py"
    hung.write_text(
        textwrap.dedent(
            """
            import ctypes

            def test_blocks_holding_the_gil():
                ctypes.PyDLL(None).sleep(60)  # a PyDLL call keeps the GIL
            """
        )
    )
    started = time.monotonic()
    command = [sys.executable, "-m", "pytest", "-p", "tests.conftest", str(hung), "-q"]
    done = subprocess.run(
        [*command, "-p", "no:cacheprovider", "--rootdir", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "BPD_TEST_HANG_LIMIT_S": "2"},
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert time.monotonic() - started < 40
    assert done.returncode != 0
    assert "Timeout (0:00:02)!" in done.stderr
    assert "test_blocks_holding_the_gil" in done.stderr
