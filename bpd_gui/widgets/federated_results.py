"""A federated run's results, read-only: the per-site table, the rounds, what crossed the
network. The Results page shows it for a run made by `bpd federate simulate|serve`.

Everything is read through core.federated.record (RunFolder; no torch, no Flower, no
computation here). What each column means: docs/federated.md.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core.errors import BPDError
from core.federated.record import FederatedResults, read_federated
from core.federated.results import ALL
from core.runs.folder import RunFolder

METRICS = (("auroc", "AUROC"), ("balanced_accuracy", "Balanced accuracy"), ("f1", "F1"))
ARM_TIPS = {
    "federated": "Every site trained together on its fold-k training patients; scored on "
    "the site's fold-k test patients with the site's own BatchNorm (FedBN)",
    "loso": "The other sites trained together; this site never trained, its BatchNorm "
    "statistics re-estimated on its own fold-k training images",
    "local": "The site trained alone on the same patients, same recipe, epochs = rounds",
    "pooled": "Every site's training patients in one place (what it would be if images "
    "could move; only a simulation can run it)",
}


def _mean_sd(stat: dict) -> str:
    if stat.get("mean") is None:
        return "–"
    sd = stat.get("sd")
    return f"{stat['mean']:.3f} ± {sd:.3f}" if sd is not None else f"{stat['mean']:.3f}"


def _item(text: str, tip: str = "", number: bool = False) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(Qt.ItemIsEnabled | Qt.ItemIsSelectable)  # read-only
    if tip:
        item.setToolTip(tip)
    if number:
        item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
    return item


def _table(name: str, headers: list[str]) -> QTableWidget:
    t = QTableWidget(0, len(headers))
    t.setObjectName(name)
    t.setHorizontalHeaderLabels(headers)
    t.verticalHeader().setVisible(False)
    t.setEditTriggers(QTableWidget.NoEditTriggers)
    t.setAlternatingRowColors(True)
    t.horizontalHeader().setStretchLastSection(True)
    return t


class FederatedResultsView(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("federated_results")
        self.results: FederatedResults | None = None
        self.title = QLabel()
        self.title.setObjectName("federated_title")
        self.title.setWordWrap(True)
        self.metric = QComboBox()
        self.metric.setObjectName("federated_metric")
        for key, title in METRICS:
            self.metric.addItem(title, key)
        self.metric.currentIndexChanged.connect(lambda _i: self._fill_sites())
        self.sites = _table("federated_sites", ["Site", "Patients (positive)"])
        self.rounds = _table(
            "federated_rounds", ["Round", "Phase", "Groups exchanged", "Mean loss", "Seconds"]
        )
        self.traffic = _table(
            "federated_traffic", ["Message", "Replies", "Arrays", "MB", "Numbers and names"]
        )
        self.traffic_note = QLabel()
        self.traffic_note.setObjectName("federated_traffic_note")
        self.traffic_note.setWordWrap(True)
        traffic = QWidget()
        box = QVBoxLayout(traffic)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.traffic)
        box.addWidget(self.traffic_note)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.rounds, "Rounds")
        self.tabs.addTab(traffic, "What the server received")
        metric_row = QHBoxLayout()
        metric_row.addWidget(QLabel("Per site, mean ± SD over the site's folds:"))
        metric_row.addWidget(self.metric)
        metric_row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addLayout(metric_row)
        layout.addWidget(self.sites, 2)
        layout.addWidget(self.tabs, 1)

    # ----- reading -------------------------------------------------------------------------
    def show_run(self, run_dir: str | Path | None) -> bool:
        """Show RUN_DIR if it is a federated run; False (and nothing shown) otherwise."""
        self.results = None
        try:
            run = RunFolder(run_dir) if run_dir else None
            if run is None or not run.has_config or not run.is_federated():
                return False
            self.results = read_federated(run)
        except BPDError as exc:  # a damaged file: say which, show nothing else
            self.title.setText(f"This federated run cannot be read: {exc}")
            self._clear()
            return True
        self._fill()
        return True

    def _clear(self) -> None:
        for t in (self.sites, self.rounds, self.traffic):
            t.setRowCount(0)
        self.traffic_note.clear()

    def _fill(self) -> None:
        r = self.results
        assert r is not None
        strategy = r.strategy or "?"
        if r.proximal_mu:
            strategy += f" (mu {r.proximal_mu:g})"
        where = "simulation" if r.role == "simulation" else "real sites (bpd federate serve)"
        seconds = f", {r.seconds:.0f} s" if r.seconds is not None else ""
        text = (
            f"<b>Federated run</b> ({where}), {r.status}: {len(r.sites)} sites, "
            f"{strategy}, {len(r.rounds)} rounds{seconds}. BatchNorm stays at each site "
            "(FedBN); docs/federated.md explains each column."
        )
        if r.error:
            text += f"<br>Error: {r.error}"
        self.title.setText(text)
        self._fill_sites()
        self._fill_rounds()
        self._fill_traffic()

    def _fill_sites(self) -> None:
        r = self.results
        if r is None:
            return
        metric = self.metric.currentData()
        self.sites.setColumnCount(2 + len(r.arms))
        headers = ["Site", "Patients (positive)", *(r.arm_title(a) for a in r.arms)]
        self.sites.setHorizontalHeaderLabels(headers)
        for col, arm in enumerate(r.arms, start=2):
            self.sites.horizontalHeaderItem(col).setToolTip(ARM_TIPS.get(arm, ""))
        self.sites.setRowCount(len(r.rows))
        for i, row in enumerate(r.rows):
            tip = "every site's folds together" if row.site == ALL else ""
            self.sites.setItem(i, 0, _item(row.site, tip))
            self.sites.setItem(i, 1, _item(f"{row.n_patients} ({row.n_positive})", number=True))
            for col, arm in enumerate(r.arms, start=2):
                stat = row.value(arm, metric)
                folds = f"{stat.get('n')} folds" if stat.get("n") is not None else ""
                self.sites.setItem(i, col, _item(_mean_sd(stat), folds, number=True))
        if not r.rows:
            self.sites.setRowCount(1)
            self.sites.setItem(0, 0, _item("no table yet: the federation has not finished"))
        self.sites.resizeColumnsToContents()

    def _fill_rounds(self) -> None:
        rounds = self.results.rounds if self.results else ()
        self.rounds.setRowCount(len(rounds))
        for i, x in enumerate(rounds):
            loss = f"{x.train_loss:.3f}" if x.train_loss is not None else "–"
            secs = f"{x.seconds:.1f}" if x.seconds is not None else "–"
            cells = [(str(x.round), True), (x.phase, False), (", ".join(x.trainable), False),
                     (loss, True), (secs, True)]  # fmt: skip
            for col, (text, number) in enumerate(cells):
                self.rounds.setItem(i, col, _item(text, number=number))
        self.rounds.resizeColumnsToContents()

    def _fill_traffic(self) -> None:
        r = self.results
        traffic = r.traffic if r else ()
        self.traffic.setRowCount(len(traffic))
        for i, t in enumerate(traffic):
            names = ", ".join(t.numbers + t.texts) or "–"
            params = "\n".join(t.array_names)
            cells = [
                _item(t.kind, t.title),
                _item(str(t.messages), number=True),
                _item(str(t.arrays), params[:4000], number=True),
                _item(f"{t.megabytes:.1f}", f"{t.values:,} values", number=True),
                _item(names, names),
            ]
            for col, item in enumerate(cells):
                self.traffic.setItem(i, col, item)
        self.traffic.resizeColumnsToContents()
        if r is not None:
            n_names = len({n for t in traffic for n in t.array_names})
            self.traffic_note.setText(
                f"{r.total_megabytes:.1f} MB from the sites in all; weights only as the "
                f"non-BatchNorm parameters of the groups that train ({n_names} names; the "
                "Arrays cell's tooltip lists them). No pixel, file name, path, patient id or "
                "prediction crosses the network."
            )
