"""`bpd self-test`: passes on a working installation, fails (exit 1) and says why when a
check fails, and finds its data from source and frozen."""

from __future__ import annotations

import csv
import os
import sys

import pydicom
import pytest

from core import paths, selftest
from core.cli.main import main


@pytest.fixture
def only(monkeypatch):
    """Run only the named checks (the others cost seconds each and are tested elsewhere)."""

    def keep(*names: str) -> None:
        monkeypatch.setattr(selftest, "CHECKS", tuple(c for c in selftest.CHECKS if c[0] in names))

    return keep


def _lines(text: str) -> dict[str, str]:
    return {line.split()[0]: line for line in text.splitlines() if line.strip()}


def test_selftest_data_is_shipped_with_the_resources():
    root = paths.resources_dir()
    for folder in selftest.SELFTEST_DATA:
        assert (root / folder).is_dir(), folder
    dicom = selftest.bundled_dicom()
    assert dicom.stat().st_size < 200_000
    syntax = pydicom.dcmread(dicom, stop_before_pixels=True).file_meta.TransferSyntaxUID
    assert syntax in selftest.JPEG2000_SYNTAXES
    with open(selftest.selftest_dir() / selftest.TABLE_NAME, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["diagnosis"] for r in rows) == ["NORMAL"] * 4 + ["PNEUMONIA"] * 4
    images_root = selftest.selftest_source().images_root
    assert all((paths.resources_dir() / "demo_cohort" / r["image"]).is_file() for r in rows)
    assert images_root == str(root / "demo_cohort")


def test_frozen_resources_and_child_command(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", "/opt/bpd-studio/bpd-studio")
    assert selftest.bundled_dicom() == tmp_path / "resources" / "selftest" / selftest.DICOM_NAME
    assert selftest.cli_command() == ["/opt/bpd-studio/bpd-studio", "--cli"]
    env = selftest.child_environment()  # the bundle's child finds core inside itself
    assert env.get("PYTHONPATH") == os.environ.get("PYTHONPATH")
    assert env["PYINSTALLER_RESET_ENVIRONMENT"] == "1"  # its own instance: may outlive us
    monkeypatch.delattr(sys, "frozen")
    assert selftest.cli_command() == ["/opt/bpd-studio/bpd-studio", "-m", "core.cli.main"]


def test_corrupt_dicom_fails_the_self_test_with_exit_1(only, tmp_path, capsys):
    data = selftest.bundled_dicom().read_bytes()
    bad = tmp_path / "cut.dcm"
    bad.write_bytes(data[: len(data) // 2])  # a copy that stopped half-way
    only("dicom")
    assert main(["self-test", "--dicom", str(bad)]) == 1
    lines = _lines(capsys.readouterr().out)
    assert " FAILED " in lines["dicom"] and "cut.dcm" in lines["dicom"]
    assert "truncated" in lines["dicom"]
    assert lines["self-test"].startswith("self-test FAILED: dicom")


def test_missing_pylibjpeg_entry_points_fail_the_dicom_check(only, monkeypatch, capsys):
    # what a bundle without the decoders' package metadata sees
    monkeypatch.setattr(selftest, "_pylibjpeg_decoders", dict)
    only("dicom")
    assert main(["self-test"]) == 1
    line = _lines(capsys.readouterr().out)["dicom"]
    assert "FAILED" in line and "entry points" in line and "1.2.840.10008.1.2.4.90" in line


def test_a_check_that_needs_a_failed_one_is_skipped(only, monkeypatch, tmp_path, capsys):
    table = tmp_path / "cohort.csv"
    table.write_text("patient_id,image,diagnosis\nN-1,missing.jpeg,NORMAL\n", encoding="utf-8")
    source = selftest.selftest_source().replace(table=str(table))
    monkeypatch.setattr(selftest, "selftest_source", lambda: source)
    only("training", "grad-cam")
    assert main(["self-test"]) == 1
    lines = _lines(capsys.readouterr().out)
    assert "FAILED" in lines["training"]
    assert "SKIPPED" in lines["grad-cam"] and "needs training" in lines["grad-cam"]


def test_the_child_process_checks_pass(only, capsys):
    only("cli-child", "mp-children")
    assert main(["self-test"]) == 0
    lines = _lines(capsys.readouterr().out)
    assert " OK " in lines["cli-child"] and "torch" in lines["cli-child"]
    assert " OK " in lines["mp-children"]
    assert "fold worker (spawn, pid" in lines["mp-children"]
    assert "loaded core.runs.runner" in lines["mp-children"]


def test_a_child_that_dies_while_loading_fails_at_once():
    from core.runs.workers import worker_context

    with pytest.raises(selftest.CheckFailed, match=r"ended without answering \(exit code 1\)"):
        selftest._start_child(worker_context(), "core.no_such_module")


@pytest.mark.slow
def test_self_test_passes_end_to_end(capsys):
    assert main(["self-test"]) == 0
    lines = _lines(capsys.readouterr().out)
    for name, *_ in selftest.CHECKS:
        assert " OK " in lines[name], lines[name]
    assert "JPEG 2000" in lines["dicom"]
    assert "2 folds of 8 patients (probe at 32 px)" in lines["report"]
    assert lines["self-test"].startswith("self-test passed: 7 checks")


def test_weights_check_loads_an_imported_file_and_fails_when_a_library_is_missing(
    only, monkeypatch, tmp_path, capsys
):
    import torch
    from torch import nn

    from core.models import weights
    from core.models.resnet import resnet50

    monkeypatch.setenv("HOME", str(tmp_path / "user"))  # the libraries' own caches
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "user" / "torch"))
    model = resnet50(num_classes=weights.XRV_NUM_CLASSES)  # torchxrayvision's layout
    model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    file = tmp_path / "xrv.pt"
    torch.save(model.state_dict(), file)
    weights.import_weights(file, "xrv")
    only("weights")
    assert main(["self-test"]) == 0
    line = _lines(capsys.readouterr().out)["weights"]
    assert " OK " in line and "xrv: " in line and " loads" in line
    assert "imagenet: library loads, no weights file" in line

    def no_xrv():  # what a bundle that missed one of torchxrayvision's modules does
        raise ModuleNotFoundError("No module named 'model.utils'")

    monkeypatch.setattr(weights, "_import_xrv", no_xrv)
    assert main(["self-test"]) == 1
    line = _lines(capsys.readouterr().out)["weights"]
    assert "FAILED" in line and "model.utils" in line
