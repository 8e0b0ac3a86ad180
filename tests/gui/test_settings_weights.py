"""Weights in the app: Settings shows each backbone's status and imports a file (checked
by `bpd weights import` to load into the backbone); Train refuses a run whose pretrained
weights are missing and says what to do."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture
def no_library_caches(tmp_path, monkeypatch):
    # torchxrayvision and torchvision also look in ~/.torchxrayvision and $TORCH_HOME
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


@pytest.fixture
def weights_panel(window, qtbot, no_library_caches):
    window.show_page("settings")
    panel = window.pages["settings"].weights
    qtbot.waitUntil(lambda: panel.status.rows is not None, timeout=120_000)
    return panel


def test_settings_imports_a_checked_weights_file(weights_panel, qtbot, tmp_path, studio_home):
    import torch
    import torchvision

    panel = weights_panel
    assert "missing" in panel.status_labels["imagenet"].text()
    assert "missing" in panel.status_labels["xrv"].text()

    bad = tmp_path / "bad.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, bad)
    panel.import_file(str(bad), "imagenet")
    qtbot.waitUntil(lambda: not panel.busy, timeout=120_000)
    assert "Not imported" in panel.message.text() and "does not fit" in panel.message.text()

    good = tmp_path / "resnet50-local.pth"  # the right layout, made here, no download
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), good)
    panel.import_file(str(good), "imagenet")
    qtbot.waitUntil(lambda: not panel.busy, timeout=120_000)
    qtbot.waitUntil(lambda: panel.status.rows["imagenet"]["present"], timeout=120_000)
    assert "present" in panel.status_labels["imagenet"].text()
    assert "missing" in panel.status_labels["xrv"].text()
    assert (studio_home / "weights" / "torchvision" / "resnet50-11ad3fa6.pth").is_file()


def test_train_refuses_a_run_whose_weights_are_missing(window, qtbot, no_library_caches, caplog):
    window.open_demo_cohort()
    qtbot.waitUntil(lambda: window.session.cohort is not None, timeout=60_000)
    train = window.pages["train"]
    train.form.init.setCurrentText("xrv")
    with caplog.at_level(logging.WARNING):
        assert train.start_run() is None
    assert not window.queue.jobs
    text = caplog.text
    assert "Pretrained weights missing" in text and "Settings" in text and "random" in text
    train.form.init.setCurrentText("random")  # needs no file: starts (then stopped)
    job = train.start_run()
    assert job is not None
