"""Shared fixtures: paths into tests/data (small real files, see tests/data/ATTRIBUTION.md),
and a watchdog that ends a hung test run with every thread's stack."""

import faulthandler
import os
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"

# The slowest test takes ~20 s here. A hang (a GIL/Qt-lock deadlock froze CI once, for
# its whole 90 minutes, without a trace) ends the run after this long instead.
# faulthandler's watchdog is a C thread: it fires even when no Python thread can run,
# which a Python-level timeout (pytest-timeout's thread) cannot.
HANG_LIMIT_S = float(os.environ.get("BPD_TEST_HANG_LIMIT_S", "900"))


def pytest_configure(config):
    # the terminal's stderr, duplicated before tests start capturing it
    config.bpd_hang_file = os.fdopen(os.dup(2), "w")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    faulthandler.dump_traceback_later(HANG_LIMIT_S, exit=True, file=item.config.bpd_hang_file)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def dicom_dir() -> Path:
    return DATA / "dicom"


@pytest.fixture(scope="session")
def images_dir() -> Path:
    return DATA / "images"


@pytest.fixture()
def studio_home(tmp_path, monkeypatch) -> Path:
    """A private BPD_STUDIO_HOME, so tests never touch the user's cache or runs."""
    home = tmp_path / "studio-home"
    monkeypatch.setenv("BPD_STUDIO_HOME", str(home))
    return home
