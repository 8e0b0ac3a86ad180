"""The Results page's read-only view of a federated run: per-site table, rounds, traffic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from bpd_gui.jobs.job_queue import JobQueue
from bpd_gui.views.results_view import ResultsView
from bpd_gui.widgets.federated_results import FederatedResultsView
from core.federated.record import read_federated
from tests.core.test_federated_report import write_federated_run

ROOT = Path(__file__).resolve().parents[2]
DEMO_RUN = ROOT / "tests" / "data" / "run_folders" / "demo-random"


@pytest.fixture
def fed_run(studio_home):
    return write_federated_run(studio_home / "runs" / "20261129-190000-federated")


def _cells(table, row: int) -> list[str]:
    return [table.item(row, c).text() for c in range(table.columnCount())]


def _headers(table) -> list[str]:
    return [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]


def test_view_shows_every_column_per_site_the_rounds_and_the_traffic(qtbot, fed_run):
    view = FederatedResultsView()
    qtbot.addWidget(view)
    assert view.show_run(fed_run.path)
    expected = read_federated(fed_run)
    assert _headers(view.sites) == [
        "Site", "Patients (positive)", "federated (FedBN)", "left out, BN re-estimated",
        "site alone", "pooled images",
    ]  # fmt: skip
    assert [view.sites.item(i, 0).text() for i in range(4)] == [
        "north",
        "middle",
        "south",
        "all sites",
    ]
    south = expected.rows[2].value("local")
    assert _cells(view.sites, 2)[:2] == ["south", "6 (3)"]
    assert _cells(view.sites, 2)[4] == f"{south['mean']:.3f} ± {south['sd']:.3f}"
    assert view.sites.item(3, 2).toolTip() == "6 folds"
    view.metric.setCurrentIndex(view.metric.findData("balanced_accuracy"))
    bal = expected.rows[0].value("loso", "balanced_accuracy")
    assert view.sites.item(0, 3).text() == f"{bal['mean']:.3f} ± {bal['sd']:.3f}"
    assert "FedAvg" in view.title.text() and "3 sites" in view.title.text()

    assert _cells(view.rounds, 0)[:3] == ["1", "probe", "head"]
    assert _cells(view.rounds, 1)[:4] == ["2", "layer4", "head, layer4", "0.640"]
    kinds = {view.traffic.item(i, 0).text(): i for i in range(view.traffic.rowCount())}
    assert set(kinds) == {"describe", "train", "evaluate"}
    train = _cells(view.traffic, kinds["train"])
    # 6 replies; per site 2 trainings x (2 head arrays in round 1 + 5 in round 2)
    assert train[1] == "6" and train[2] == "42"
    mb = next(t for t in expected.traffic if t.kind == "train").megabytes
    assert train[3] == f"{mb:.1f}"
    tip = view.traffic.item(kinds["train"], 2).toolTip()
    assert "backbone.layer4.0.downsample.0.weight" in tip and "bn" not in tip
    assert "no pixel" in view.traffic_note.text().lower()


def test_view_declines_a_cross_validation_run_and_says_when_a_federation_runs(qtbot, studio_home):
    view = FederatedResultsView()
    qtbot.addWidget(view)
    assert not view.show_run(DEMO_RUN)  # a `bpd train` run: Results shows it as before
    assert not view.show_run(None)
    busy = write_federated_run(studio_home / "busy", server=True, finished=False)
    assert view.show_run(busy.path)
    assert "has not finished" in view.sites.item(0, 0).text()
    assert view.rounds.rowCount() == 2 and "real sites" in view.title.text()


def test_results_page_shows_the_view_for_a_selected_federated_run(qtbot, fed_run):
    queue = JobQueue()
    page = ResultsView(queue)
    qtbot.addWidget(page)
    page.show()
    queue.open_run(fed_run.path)
    item = page.table.topLevelItem(0)
    assert item.data(0, Qt.UserRole) == str(fed_run.path)
    assert page.federated.isVisible()  # the newest run is selected by default
    page.table.setCurrentItem(item)
    assert page.federated.isVisible()
    assert page.federated.sites.rowCount() == 4
    assert not page.review_button.isEnabled()  # its fold models are at the sites
    page.table.clearSelection()
    assert page.federated.isHidden()


def test_the_view_loads_neither_torch_nor_flower(fed_run):
    code = (
        "import os, sys; os.environ['QT_QPA_PLATFORM']='offscreen'\n"
        "from PySide6.QtWidgets import QApplication; app = QApplication([])\n"
        "from bpd_gui.widgets.federated_results import FederatedResultsView\n"
        f"assert FederatedResultsView().show_run({str(fed_run.path)!r})\n"
        "print('torch' in sys.modules, 'flwr' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False False"
