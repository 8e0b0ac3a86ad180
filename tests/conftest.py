"""Shared fixtures: paths into tests/data (small real files, see tests/data/ATTRIBUTION.md)."""

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"


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
