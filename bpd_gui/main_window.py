"""The main window: navigation, pages, menus, status bar, remembered state, safe closing."""

from __future__ import annotations

import json

from PySide6.QtCore import QSettings, QSize, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QWidget,
)

from bpd_gui.about import show_about
from bpd_gui.cohort_session import CohortSession, CohortSource
from bpd_gui.icons import page_icon
from bpd_gui.jobs.job_queue import JobQueue
from bpd_gui.messages import show_error
from bpd_gui.views.cohort_view import TABLE_FILTER, CohortView
from bpd_gui.views.predict_view import PredictView
from bpd_gui.views.results_view import ResultsView
from bpd_gui.views.review_view import ReviewView
from bpd_gui.views.settings_view import SettingsView
from bpd_gui.views.simple_pages import StartView
from bpd_gui.views.train_view import TrainView
from bpd_gui.workers import TaskRunner
from core import paths

PAGES = ("start", "cohort", "train", "results", "review", "predict", "settings")


class MainWindow(QMainWindow):
    def __init__(self, settings: QSettings | None = None, discover_runs: bool = True):
        super().__init__()
        self.setWindowTitle("BPD Studio")
        self.setAcceptDrops(True)
        self.settings = settings or QSettings("BPD Studio", "bpd-studio")
        self.close_policy: str | None = None  # None: ask; "stop" / "leave" (tests, scripts)
        self.tasks = TaskRunner(max_threads=2, parent=self)
        self.session = CohortSession(self.tasks, self)
        self.queue = JobQueue(self)

        self.pages = {
            "start": StartView(),
            "cohort": CohortView(self.session),
            "train": TrainView(self.session, self.queue),
            "results": ResultsView(self.queue),
            "review": ReviewView(self.tasks),
            "predict": PredictView(),
            "settings": SettingsView(self.settings),
        }
        self.nav = QListWidget()
        self.nav.setObjectName("nav")
        self.nav.setIconSize(QSize(22, 22))
        self.nav.setFixedWidth(150)
        self.stack = QStackedWidget()
        for name, page in self.pages.items():
            QListWidgetItem(page_icon(name), name.capitalize(), self.nav)
            self.stack.addWidget(page)
        self.nav.currentRowChanged.connect(self.stack.setCurrentIndex)
        self.nav.currentRowChanged.connect(self._on_page_shown)
        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.nav)
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(central)

        self.job_status = QLabel()
        self.job_status.setObjectName("job_status")
        self.statusBar().addPermanentWidget(self.job_status)
        self._build_menus()
        self._connect()
        self.show_page("start")
        self._restore(discover_runs)

    # --- construction ---------------------------------------------------------------
    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self._action(file_menu, "&Open table…", self.choose_table, QKeySequence.Open)
        self._action(file_menu, "Open &demo cohort", self.open_demo_cohort, "Ctrl+D")
        self._action(file_menu, "Open &run folder…", self._choose_run, "Ctrl+R")
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.Quit)
        view_menu = self.menuBar().addMenu("&View")
        for i, name in enumerate(PAGES, start=1):
            go = lambda n=name: self.show_page(n)  # noqa: E731
            self._action(view_menu, name.capitalize(), go, f"Ctrl+{i}")
        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "&About BPD Studio", self.about, QKeySequence.HelpContents)

    def _action(self, menu, text, slot, shortcut=None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(lambda _=False: slot())
        menu.addAction(action)
        return action

    def _connect(self) -> None:
        start = self.pages["start"]
        start.open_demo.connect(self.open_demo_cohort)
        start.open_table.connect(self.choose_table)
        self.session.cohort_changed.connect(self._on_cohort)
        self.session.validating.connect(lambda: self.statusBar().showMessage("Checking cohort…"))
        self.queue.changed.connect(self._update_job_status)
        self.queue.job_updated.connect(lambda _j: self._update_job_status())
        self.queue.job_ended.connect(self._on_job_ended)
        self.pages["results"].review_requested.connect(self.review_run)

    def _restore(self, discover_runs: bool) -> None:
        geometry = self.settings.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 800)
        if discover_runs:
            QTimer.singleShot(0, lambda: self.queue.discover(paths.runs_dir()))
        last = self.settings.value("last_cohort")
        if last and self.settings.value("reopen_last_cohort", True, type=bool):
            try:
                source = CohortSource.from_json(json.loads(last))
            except (ValueError, KeyError, TypeError):
                return
            self.session.restore(source)

    # --- actions ----------------------------------------------------------------------
    def show_page(self, name: str) -> None:
        self.nav.setCurrentRow(PAGES.index(name))

    def current_page(self) -> str:
        return PAGES[self.stack.currentIndex()]

    def review_run(self, run_dir: str) -> None:
        self.pages["review"].open_run(run_dir)  # before showing: not the newest instead
        self.show_page("review")

    def _on_page_shown(self, index: int) -> None:
        # Review and Predict list the finished runs as they are now
        if PAGES[index] == "review":
            self.pages["review"].refresh_runs()
            self.pages["review"].open_newest_if_none()
        elif PAGES[index] == "predict":
            self.pages["predict"].refresh_models()

    def choose_table(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open cohort table", "", TABLE_FILTER)
        if path:
            self.show_page("cohort")
            self.pages["cohort"].open_table(path)

    def open_demo_cohort(self) -> None:
        table = paths.demo_cohort_table()
        if not table.is_file():
            show_error(self, "Demo cohort missing", f"{table} is not there. Reinstall the app.")
            return
        self.show_page("cohort")
        self.statusBar().showMessage("Opening the demo cohort…")
        self.session.open_with_guesses(str(table))

    def _choose_run(self) -> None:
        self.show_page("train")
        self.pages["train"].choose_run()

    def about(self):
        return show_about(self)

    def _on_cohort(self, cohort) -> None:
        self.statusBar().showMessage(
            f"Cohort: {cohort.n_patients} patients, {cohort.n_images} images, "
            f"{len(cohort.problems)} problem{'' if len(cohort.problems) == 1 else 's'}",
            8000,
        )
        if self.session.source is not None:
            self.settings.setValue("last_cohort", json.dumps(self.session.source.to_json()))

    def _update_job_status(self) -> None:
        job = self.queue.active_job()
        queued = len(self.queue.queued_jobs())
        if job is None:
            text = f"{queued} queued" if queued else "No job running"
        else:
            frac = job.progress.fraction_done()
            pct = f" {frac * 100:.0f}%" if frac is not None else ""
            text = f"Training {job.name}{pct}" + (f" · {queued} queued" if queued else "")
        self.job_status.setText(text)

    def _on_job_ended(self, job) -> None:
        self._update_job_status()
        status = job.progress.status
        self.statusBar().showMessage(f"Run {job.name}: {status}", 10000)
        if status == "failed":
            show_error(self, "The run failed", f"{job.name} stopped with an error:\n\n"
                       f"{(job.progress.error or '')[:1500]}\n\nIt can be resumed from the "
                       "Train page once the cause is fixed.")  # fmt: skip

    # --- drops anywhere in the window go to the Cohort page -----------------------------
    def dragEnterEvent(self, event) -> None:
        self.pages["cohort"].dragEnterEvent(event)

    def dropEvent(self, event) -> None:
        self.show_page("cohort")
        self.pages["cohort"].dropEvent(event)

    # --- closing ----------------------------------------------------------------------
    def closeEvent(self, event) -> None:
        active = self.queue.active_job()
        if active is not None:
            choice = self.close_policy or self._ask_about_running_job(active)
            if choice == "cancel":
                event.ignore()
                return
            if choice == "stop":
                active.cancel()
            for job in self.queue.jobs:
                job.stop_following()
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.sync()
        self.pages["train"].bench.stop()
        self.pages["review"].shutdown()
        self.pages["predict"].shutdown()
        self.pages["settings"].weights.shutdown()
        self.tasks.shutdown(5000)
        event.accept()

    def _ask_about_running_job(self, job) -> str:
        queued = len(self.queue.queued_jobs())
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Question)
        box.setWindowTitle("A run is still training")
        box.setText(
            f"{job.name} is still training."
            + (f" {queued} queued run(s) will not start." if queued else "")
        )
        box.setInformativeText(
            "Leave it running: it goes on in the background and the app reattaches to it "
            "next time. Stop it: it stops after the current batch and can be resumed."
        )
        leave = box.addButton("Leave it running", QMessageBox.AcceptRole)
        stop = box.addButton("Stop it", QMessageBox.DestructiveRole)
        box.addButton(QMessageBox.Cancel)
        box.setDefaultButton(leave)
        box.exec()
        clicked = box.clickedButton()
        return "leave" if clicked is leave else "stop" if clicked is stop else "cancel"
