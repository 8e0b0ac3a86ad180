"""The runs the app knows (queued, running, past), newest first, with their status."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QHeaderView, QTreeWidget, QTreeWidgetItem

from bpd_gui.jobs.job_queue import JobQueue
from bpd_gui.jobs.run_job import RunJob

STATUS_COLORS = {"failed": "#b00020", "running": "#0b6e2e", "queued": "#555",
                 "cancelled": "#8a6d00", "stopping": "#8a6d00", "finished": "#08519c"}  # fmt: skip


class RunList(QTreeWidget):
    job_selected = Signal(object)  # RunJob or None

    def __init__(self, queue: JobQueue, parent=None):
        super().__init__(parent)
        self.setObjectName("run_list")
        self.queue = queue
        self.setHeaderLabels(["Run", "Status", "AUROC"])
        self.setRootIsDecorated(False)
        header = self.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeToContents)
        queue.changed.connect(self.refresh)
        queue.job_updated.connect(self._update_job)
        self.itemSelectionChanged.connect(self._on_selection)

    def refresh(self) -> None:
        selected = self.selected_job()
        self.blockSignals(True)
        self.clear()
        for job in sorted(self.queue.jobs, key=lambda j: j.name, reverse=True):
            item = QTreeWidgetItem()
            item.setData(0, Qt.UserRole, job)
            self._fill(item, job)
            self.addTopLevelItem(item)
            if job is selected:
                item.setSelected(True)
        self.blockSignals(False)
        if selected is not None and self.selected_job() is not selected:
            self._on_selection()

    def _fill(self, item: QTreeWidgetItem, job: RunJob) -> None:
        status = job.status_text()
        auroc = (job.progress.summary or {}).get("auroc") or {}
        item.setText(0, job.name)
        item.setToolTip(0, str(job.run_dir))
        item.setText(1, status)
        item.setForeground(1, QBrush(QColor(STATUS_COLORS.get(status, "#333"))))
        if isinstance(auroc, dict) and auroc.get("mean") is not None:
            item.setText(2, f"{auroc['mean']:.3f} ± {auroc.get('sd') or 0:.3f}")

    def _update_job(self, job: RunJob) -> None:
        for i in range(self.topLevelItemCount()):
            item = self.topLevelItem(i)
            if item.data(0, Qt.UserRole) is job:
                self._fill(item, job)

    def select_job(self, job: RunJob) -> None:
        for i in range(self.topLevelItemCount()):
            item = self.topLevelItem(i)
            if item.data(0, Qt.UserRole) is job:
                self.setCurrentItem(item)
                return

    def selected_job(self) -> RunJob | None:
        items = self.selectedItems()
        return items[0].data(0, Qt.UserRole) if items else None

    def _on_selection(self) -> None:
        self.job_selected.emit(self.selected_job())
