"""Results page (part 1): every known run with its summary, one row per run."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from bpd_gui.jobs.job_queue import JobQueue
from bpd_gui.jobs.run_progress import describe_config
from bpd_gui.widgets.federated_results import FederatedResultsView
from core.runs.folder import RunFolder

METRICS = (("auroc", "AUROC"), ("balanced_accuracy", "Bal. acc."), ("f1", "F1"),
           ("sensitivity", "Sens."), ("specificity", "Spec."))  # fmt: skip


class ResultsView(QWidget):
    review_requested = Signal(str)  # a finished run's folder, for the Review page
    def __init__(self, queue: JobQueue, parent=None):
        super().__init__(parent)
        self.queue = queue
        self.table = QTreeWidget()
        self.table.setObjectName("results_table")
        self.table.setRootIsDecorated(False)
        self.table.setAlternatingRowColors(True)
        metric_titles = [t for _, t in METRICS]
        self.table.setHeaderLabels(
            ["Run", "Status", *metric_titles, "Pooled AUROC", "Patients", "Folds", "Settings"]
        )
        note = QLabel(
            "Mean ± SD over cross-validation folds (the summary of each run). Each infant "
            "with its Grad-CAM: the Review page. Comparing two runs: "
            "<code>bpd compare A B</code>."
        )
        note.setWordWrap(True)
        self.report_button = QPushButton("Open report")
        self.report_button.setToolTip("The run's report.html (written by `bpd report`)")
        self.report_button.clicked.connect(lambda: self._open(report=True))
        self.folder_button = QPushButton("Open folder")
        self.folder_button.clicked.connect(lambda: self._open(report=False))
        self.review_button = QPushButton("Review infants")
        self.review_button.setObjectName("review_run_button")
        self.review_button.setToolTip("Each infant of the run with its radiograph and Grad-CAM")
        self.review_button.clicked.connect(self._review)
        buttons = QHBoxLayout()
        buttons.addWidget(self.review_button)
        buttons.addWidget(self.report_button)
        buttons.addWidget(self.folder_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(note)
        layout.addWidget(self.table)
        layout.addLayout(buttons)
        self.federated = FederatedResultsView()  # the selected run's sites, if it is federated
        self.federated.hide()
        layout.addWidget(self.federated)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        queue.changed.connect(self.refresh)
        queue.job_ended.connect(lambda _job: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        self.table.clear()
        for job in sorted(self.queue.jobs, key=lambda j: j.name, reverse=True):
            s = job.progress.summary or {}
            cells = [job.name, job.status_text()]
            for key, _ in METRICS:
                m = s.get(key)
                ok = isinstance(m, dict) and m.get("mean") is not None
                cells.append(f"{m['mean']:.3f} ± {m.get('sd') or 0:.3f}" if ok else "")
            pooled = s.get("pooled_auroc")
            cells.append(f"{pooled:.3f}" if isinstance(pooled, int | float) else "")
            pos = s.get("n_positive")
            n = s.get("n_patients")
            cells.append(f"{n} ({pos} pos.)" if n is not None else "")
            cells.append(str(s.get("n_folds", "")))
            cells.append(describe_config(job.progress.config))
            item = QTreeWidgetItem(cells)
            item.setData(0, Qt.UserRole, str(job.run_dir))
            item.setToolTip(0, str(job.run_dir))
            item.setToolTip(len(cells) - 1, cells[-1])
            for col in range(2, len(cells) - 1):
                item.setTextAlignment(col, Qt.AlignRight | Qt.AlignVCenter)
            self.table.addTopLevelItem(item)
        for col in range(self.table.columnCount()):
            self.table.resizeColumnToContents(col)
        self._update_buttons()

    def selected_run(self) -> Path | None:
        items = self.table.selectedItems()
        return Path(items[0].data(0, Qt.UserRole)) if items else None

    def _update_buttons(self) -> None:
        run = self.selected_run()
        self.report_button.setEnabled(run is not None and RunFolder(run).report_path.is_file())
        self.folder_button.setEnabled(run is not None and run.is_dir())
        finished = run is not None and RunFolder(run).summary() is not None
        federated = self.federated.show_run(run)
        self.federated.setVisible(federated)
        self.review_button.setEnabled(finished and not federated)  # its folds are at the sites

    def _review(self) -> None:
        run = self.selected_run()
        if run is not None:
            self.review_requested.emit(str(run))

    def _open(self, report: bool) -> None:
        run = self.selected_run()
        if run is not None:
            target = RunFolder(run).report_path if report else run
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(target)))
