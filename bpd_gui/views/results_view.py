"""Results page: every known run (newest selected), and the selected run's results.

The details are read by core (core.evaluation.run_results: no torch) in a background
thread and drawn here: metrics with 95% CIs, clinical baselines, ROC, precision-recall,
calibration, the per-fold table. Two selected runs are compared by `bpd compare --json`
in a child process; a study's arms have their own tab (StudyResults). A federated run
shows its sites instead (FederatedResultsView).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from PySide6.QtCore import Qt, QThreadPool, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from bpd_gui.jobs.job_queue import JobQueue
from bpd_gui.jobs.run_progress import describe_config
from bpd_gui.messages import show_error
from bpd_gui.widgets.cli_process import CliProcess
from bpd_gui.widgets.federated_results import FederatedResultsView
from bpd_gui.widgets.result_plots import ResultPlots
from bpd_gui.widgets.study_results import StudyResults
from bpd_gui.workers import FunctionWorker
from core.errors import InputError
from core.evaluation.run_results import METRIC_TITLES, RunResults, read_run_results
from core.runs.folder import RunFolder

METRICS = (("auroc", "AUROC"),)  # the others are in the selected run's details
COLUMNS = ["Run", "Status", *[t for _, t in METRICS], "Ensemble AUROC", "Patients", "Settings"]
SETTINGS_COL = len(COLUMNS) - 1


def _num(x: float | None, d: int = 3) -> str:
    return "–" if x is None else f"{x:.{d}f}"


def _cell(text: str, number: bool = True, tip: str = "") -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(Qt.ItemIsSelectable | Qt.ItemIsEnabled)
    if number:
        item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
    if tip:
        item.setToolTip(tip)
    return item


def _table(name: str, headers: list[str]) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setObjectName(name)
    table.setHorizontalHeaderLabels(headers)
    table.verticalHeader().hide()
    table.setEditTriggers(QAbstractItemView.NoEditTriggers)
    table.setAlternatingRowColors(True)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    return table


def _fit_height(table: QTableWidget) -> None:
    """As tall as its rows (no empty band under a short table)."""
    table.resizeRowsToContents()
    rows = sum(table.rowHeight(r) for r in range(table.rowCount()))
    table.setFixedHeight(rows + table.horizontalHeader().height() + 2 * table.frameWidth() + 2)


def _fill(table: QTableWidget, rows: list[list[QTableWidgetItem]]) -> None:
    table.setRowCount(len(rows))
    for r, cells in enumerate(rows):
        for c, item in enumerate(cells):
            table.setItem(r, c, item)


class RunDetails(QWidget):
    """The selected run: headline, metrics and baselines, plots, folds, comparison."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.headline = QLabel("Select a run.")
        self.headline.setObjectName("results_headline")
        self.headline.setWordWrap(True)
        self.headline.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.metrics = _table(
            "results_metrics",
            ["Metric", "Mean ± SD over folds", "Pooled out-of-fold", "95% CI (pooled)", "Folds"],
        )
        self.baselines = _table(
            "results_baselines", ["Score", "AUROC mean ± SD", "Ensemble AUROC", "Notes"]
        )
        self.baselines_note = QLabel()
        self.baselines_note.setWordWrap(True)
        summary = QWidget()
        box = QVBoxLayout(summary)
        box.setContentsMargins(0, 0, 0, 0)
        ci_note = QLabel(
            "95% CI: stratified bootstrap (2000 resamples) of the pooled out-of-fold "
            "predictions, each infant scored by the fold models that never trained on it; "
            "threshold metrics at the run's threshold."
        )
        ci_note.setWordWrap(True)
        ci_note.setStyleSheet("color:#555")
        self.metrics.horizontalHeader().setStretchLastSection(False)
        box.addWidget(self.metrics)
        box.addWidget(ci_note)
        box.addWidget(QLabel("<b>Clinical baselines on the same folds</b>"))
        box.addWidget(self.baselines)
        box.addWidget(self.baselines_note)
        box.addStretch(1)
        self.plots = ResultPlots()
        self.folds = _table(
            "results_folds",
            ["Fold", "Train", "Test", "Test +", "Threshold", *METRIC_TITLES.values()],
        )
        self.compare = _table("results_compare", ["Test", "A", "B", "A − B", "Pairs", "A > B", "p"])
        self.compare_note = QLabel("Select two runs (Ctrl-click) and press Compare.")
        self.compare_note.setObjectName("compare_note")
        self.compare_note.setWordWrap(True)
        self.compare_note.setTextInteractionFlags(Qt.TextSelectableByMouse)
        compare = QWidget()
        cbox = QVBoxLayout(compare)
        cbox.setContentsMargins(0, 0, 0, 0)
        cbox.addWidget(self.compare_note)
        self.compare.horizontalHeader().setStretchLastSection(False)
        cbox.addWidget(self.compare)
        cbox.addStretch(1)
        self.tabs = QTabWidget()
        self.tabs.setObjectName("results_tabs")
        self.tabs.addTab(summary, "Metrics and baselines")
        self.tabs.addTab(self.plots, "ROC, precision-recall, calibration")
        self.tabs.addTab(self.folds, "Per fold")
        self.tabs.addTab(compare, "Compare two runs")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.headline)
        layout.addWidget(self.tabs, 1)
        self.results: RunResults | None = None

    def show_message(self, text: str) -> None:
        self.results = None
        self.headline.setText(text)
        for t in (self.metrics, self.baselines, self.folds):
            t.setRowCount(0)
        self.baselines_note.clear()
        self.plots.clear()

    def show_results(self, r: RunResults, settings: str) -> None:
        self.results = r
        threshold = (
            f"threshold {r.threshold:g}" if r.threshold is not None else "per-fold thresholds"
        )
        caveat = f"<br><span style='color:#b00020'>{r.caveat}</span>" if r.caveat else ""
        self.headline.setText(
            f"<b>{r.run_dir.name}</b> — {r.status}; {r.n_patients} infants "
            f"({r.n_positive} positive), {len(r.folds)} folds, {threshold}."
            f"<br><span style='color:#555'>{settings}</span>{caveat}"
        )
        rows = []
        for m in r.metrics:
            ci = f"{_num(m.ci_low)} – {_num(m.ci_high)}" if m.ci_low is not None else "–"
            mean = f"{_num(m.mean)} ± {_num(m.sd)}" if m.mean is not None else "–"
            rows.append([_cell(m.title, False), _cell(mean), _cell(_num(m.pooled)), _cell(ci),
                         _cell(str(m.n_folds))])  # fmt: skip
        _fill(self.metrics, rows)
        _fit_height(self.metrics)
        auroc = next(m for m in r.metrics if m.key == "auroc")
        base_rows = [[
            _cell("image model (this run)", False),
            _cell(f"{_num(auroc.mean)} ± {_num(auroc.sd)}"),
            _cell(_num(auroc.pooled)), _cell("", False),
        ]]  # fmt: skip
        for b in r.baselines:
            base_rows.append([
                _cell(b["title"], False), _cell(f"{_num(b['auroc_mean'])} ± {_num(b['auroc_sd'])}"),
                _cell(_num(b["pooled"])), _cell(b["note"], False, b["note"]),
            ])  # fmt: skip
        _fill(self.baselines, base_rows)
        _fit_height(self.baselines)
        self.baselines_note.setText(r.baselines_note)
        fold_rows = []
        for f in r.folds:
            pos = "–" if f["n_test_pos"] is None else str(f["n_test_pos"])
            fold_rows.append(
                [_cell(f["fold_id"], False), _cell(str(f["n_train"])), _cell(str(f["n_test"])),
                 _cell(pos), _cell(_num(f["threshold"], 2))]
                + [_cell(_num(v)) for v in f["metrics"].values()]
            )  # fmt: skip
        _fill(self.folds, fold_rows)
        self.plots.show_results(r)

    def show_comparison(self, result: dict) -> None:
        a, b = Path(result["run_a"]).name, Path(result["run_b"]).name
        rows = []
        for key in ("repeats", "folds"):
            t = result[key]
            diff = None if t["mean_a"] is None else t["mean_a"] - t["mean_b"]
            rows.append([
                _cell(f"Wilcoxon, {t['unit']}", False), _cell(_num(t["mean_a"])),
                _cell(_num(t["mean_b"])), _cell(_num(diff)), _cell(str(len(t["keys"]))),
                _cell(str(t["a_better"])), _cell(_p(t["wilcoxon"]["p_value"])),
            ])  # fmt: skip
        t = result.get("folds_corrected_t")
        if t:  # folds share training patients: the fold-level Wilcoxon alone is optimistic
            rows.append([
                _cell("Corrected resampled t, fold AUROC", False), _cell(""), _cell(""),
                _cell(_num(t["mean_difference"])), _cell(str(t["n_folds"])), _cell(""),
                _cell(_p(t["p_value"])),
            ])  # fmt: skip
        d = result["delong"]
        rows.append([
            _cell("DeLong, pooled out-of-fold AUROC", False), _cell(_num(d["auc_a"])),
            _cell(_num(d["auc_b"])), _cell(_num(d["difference"])), _cell(""), _cell(""),
            _cell(_p(d["p_value"])),
        ])  # fmt: skip
        _fill(self.compare, rows)
        _fit_height(self.compare)
        self.compare_note.setText(
            f"A = <b>{a}</b>, B = <b>{b}</b>: {result['n_patients']} infants "
            f"({result['n_positive']} positive) on the same folds. AUROC difference A − B "
            f"{_num(d['difference'])} (95% CI {_num(d['ci_low'])} to {_num(d['ci_high'])}). "
            "The smallest p an exact Wilcoxon test can give with "
            f"{len(result['repeats']['keys'])} repeats is "
            f"{result['repeats']['smallest_possible_p']:.3f}."
        )
        self.tabs.setCurrentIndex(3)

    def show_comparison_error(self, message: str) -> None:
        self.compare.setRowCount(0)
        self.compare_note.setText(f"These runs cannot be compared: {message}")
        self.tabs.setCurrentIndex(3)


def _p(p: float) -> str:
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


class ResultsView(QWidget):
    review_requested = Signal(str)  # a finished run's folder, for the Review page

    def __init__(self, queue: JobQueue, parent=None):
        super().__init__(parent)
        self.queue = queue
        self.table = QTreeWidget()
        self.table.setObjectName("results_table")
        self.table.setRootIsDecorated(False)
        self.table.setAlternatingRowColors(True)
        self.table.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.table.setHeaderLabels(COLUMNS)
        self.table.setTextElideMode(Qt.ElideMiddle)
        header = self.table.header()
        header.setStretchLastSection(True)  # Settings takes the rest; the details repeat it
        header.setMinimumSectionSize(60)
        note = QLabel(
            "Newest first. Mean ± SD over cross-validation folds. Select a run for its "
            "details; select two (Ctrl-click) to compare them."
        )
        note.setWordWrap(True)
        self.review_button = QPushButton("Review infants")
        self.review_button.setObjectName("review_run_button")
        self.review_button.setToolTip("Each infant of the run with its radiograph and Grad-CAM")
        self.review_button.clicked.connect(self._review)
        self.compare_button = QPushButton("Compare")
        self.compare_button.setObjectName("compare_button")
        self.compare_button.setToolTip(
            "bpd compare: paired Wilcoxon tests on repeats and folds, DeLong on the pooled "
            "out-of-fold predictions (same patients and folds needed)"
        )
        self.compare_button.clicked.connect(self.compare_selected)
        self.report_button = QPushButton("Open report")
        self.report_button.setToolTip(
            "The run's report.html in the browser (written by `bpd report` first if missing)"
        )
        self.report_button.clicked.connect(lambda: self._open(report=True))
        self.folder_button = QPushButton("Open folder")
        self.folder_button.clicked.connect(lambda: self._open(report=False))
        self.remove_button = QPushButton("Remove run…")
        self.remove_button.setObjectName("remove_button")
        self.remove_button.setToolTip("Delete the run folder (asks first; not while it trains)")
        self.remove_button.clicked.connect(self.remove_selected)
        buttons = QHBoxLayout()
        for b in (self.review_button, self.compare_button, self.report_button, self.folder_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.remove_button)
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(note)
        top_layout.addWidget(self.table, 1)
        top_layout.addLayout(buttons)
        self.details = RunDetails()
        self.study = StudyResults()  # `bpd study` folders: table and forest plot
        self.details.tabs.addTab(self.study, "Study")
        self.details.tabs.currentChanged.connect(
            lambda _i: (
                self.study.refresh() if self.details.tabs.currentWidget() is self.study else None
            )
        )
        self.federated = FederatedResultsView()  # the selected run's sites, if it is federated
        self.federated.hide()
        bottom = QWidget()
        bottom_layout = QVBoxLayout(bottom)
        bottom_layout.setContentsMargins(0, 0, 0, 0)
        bottom_layout.addWidget(self.details, 1)
        bottom_layout.addWidget(self.federated, 1)
        split = QSplitter(Qt.Vertical)
        split.addWidget(top)
        split.addWidget(bottom)
        split.setStretchFactor(1, 3)
        split.setSizes([220, 560])
        layout = QVBoxLayout(self)
        layout.addWidget(split)

        self.reporter = CliProcess(self)  # `bpd report` for a run without report.html
        self.reporter.finished.connect(self._on_reported)
        self.comparer = CliProcess(self)
        self.comparer.finished.connect(self._on_compared)
        # the user's answer to "remove this run?" (tests replace it)
        self.confirm_removal = self._ask_removal
        self._cache: dict[tuple[str, int], RunResults] = {}
        self._loading: str | None = None
        self._worker: FunctionWorker | None = None
        self._user_chose = False  # until the user selects, the newest run is shown
        self.table.itemSelectionChanged.connect(self._on_user_selection)
        queue.changed.connect(self.refresh)
        queue.job_ended.connect(lambda _job: self.refresh())
        self.refresh()

    # --- the run table ----------------------------------------------------------------
    def refresh(self) -> None:
        selected = {str(p) for p in self.selected_runs()} if self._user_chose else set()
        self.table.blockSignals(True)
        self.table.clear()
        for job in sorted(self.queue.jobs, key=lambda j: j.name, reverse=True):
            s = job.progress.summary or {}
            cells = [job.name, job.status_text()]
            for key, _ in METRICS:
                m = s.get(key)
                ok = isinstance(m, dict) and m.get("mean") is not None
                cells.append(f"{m['mean']:.3f} ± {m.get('sd') or 0:.3f}" if ok else "")
            pooled = s.get("ensemble_auroc", s.get("pooled_auroc"))
            cells.append(f"{pooled:.3f}" if isinstance(pooled, int | float) else "")
            n, pos = s.get("n_patients"), s.get("n_positive")
            cells.append(f"{n} ({pos} pos.)" if n is not None else "")
            train = _train_settings(job)
            cells.append(short_settings(train))
            item = QTreeWidgetItem(cells)
            item.setData(0, Qt.UserRole, str(job.run_dir))
            item.setToolTip(0, str(job.run_dir))
            item.setToolTip(SETTINGS_COL, describe_config(train))
            for col in range(2, SETTINGS_COL):
                item.setTextAlignment(col, Qt.AlignRight | Qt.AlignVCenter)
            self.table.addTopLevelItem(item)
            if str(job.run_dir) in selected:
                item.setSelected(True)
        for col in range(SETTINGS_COL):
            self.table.resizeColumnToContents(col)
        self.table.setColumnWidth(0, min(self.table.columnWidth(0), 260))
        if not self.table.selectedItems() and self.table.topLevelItemCount():
            self.table.topLevelItem(0).setSelected(True)  # the newest run
        self.table.blockSignals(False)
        self._on_selection()
        if self.details.tabs.currentWidget() is self.study:  # else when its tab is opened
            self.study.refresh()

    def selected_runs(self) -> list[Path]:
        return [Path(i.data(0, Qt.UserRole)) for i in self.table.selectedItems()]

    def selected_run(self) -> Path | None:
        current = self.table.currentItem()
        if current is not None and current.isSelected():
            return Path(current.data(0, Qt.UserRole))
        runs = self.selected_runs()
        return runs[0] if runs else None

    def select_run(self, run_dir: str | Path) -> None:
        for i in range(self.table.topLevelItemCount()):
            item = self.table.topLevelItem(i)
            item.setSelected(Path(item.data(0, Qt.UserRole)) == Path(run_dir))

    def _on_user_selection(self) -> None:
        self._user_chose = True
        self._on_selection()

    def _on_selection(self) -> None:
        run = self.selected_run()
        folder = RunFolder(run) if run is not None else None
        self.report_button.setEnabled(run is not None and run.is_dir())
        self.folder_button.setEnabled(run is not None and run.is_dir())
        self.remove_button.setEnabled(run is not None)
        self.compare_button.setEnabled(len(self.selected_runs()) == 2)
        finished = folder is not None and _summary(folder) is not None
        federated = self.federated.show_run(run)
        self.federated.setVisible(federated)
        self.details.setVisible(not federated)
        self.review_button.setEnabled(finished and not federated)  # its folds are at the sites
        if run is not None and not federated:
            self.show_details(run)
        elif run is None:
            self.details.show_message("No runs yet: start one on the Train page.")

    # --- the selected run's details -------------------------------------------------------
    def show_details(self, run: Path) -> None:
        job = self.queue.find(run)
        settings = describe_config(_train_settings(job) if job else _recorded_train(run))
        # a run that gets new events (resumed, still training) is read again
        key = (str(run), job.progress.n_events if job else 0)
        if key in self._cache:
            self.details.show_results(self._cache[key], settings)
            return
        if self._loading == str(run):
            return
        self._loading = str(run)
        self.details.show_message(f"<b>{run.name}</b> — reading its results…")
        worker = FunctionWorker(read_run_results, run)
        worker.signals.finished.connect(lambda r, k=key, s=settings: self._on_read(k, r, s))
        worker.signals.failed.connect(lambda msg, k=key: self._on_read_failed(k, msg))
        self._worker = worker
        QThreadPool.globalInstance().start(worker)

    def _on_read(self, key: tuple[str, int], results: RunResults, settings: str) -> None:
        if not isValid(self.table):  # the window closed while the read ran
            return
        self._cache[key] = results
        if self._loading == key[0]:
            self._loading = None
        run = self.selected_run()
        if run is not None and not self.federated.isVisible():
            self.show_details(run)  # this run's, or the one selected meanwhile

    def _on_read_failed(self, key: tuple[str, int], message: str) -> None:
        if not isValid(self.table):
            return
        if self._loading == key[0]:
            self._loading = None
        if self.selected_run() is not None and str(self.selected_run()) == key[0]:
            self.details.show_message(f"<b>{Path(key[0]).name}</b>: no results to show yet "
                                      f"({message}).")  # fmt: skip

    def is_loading(self) -> bool:
        return self._loading is not None

    # --- comparing two runs -----------------------------------------------------------------
    def compare_selected(self) -> None:
        runs = self.selected_runs()
        if len(runs) != 2 or self.comparer.is_running():
            return
        a, b = sorted(runs, key=lambda p: p.name)
        self.details.compare_note.setText(f"Comparing {a.name} with {b.name} (bpd compare)…")
        self.details.tabs.setCurrentIndex(3)
        self.comparer.start(["compare", str(a), str(b), "--json"])

    def _on_compared(self, ok: bool, message: str) -> None:
        if not ok:
            self.details.show_comparison_error(message.removeprefix("error: "))
            return
        try:
            self.details.show_comparison(json.loads(message))
        except (ValueError, KeyError) as exc:
            self.details.show_comparison_error(f"unexpected output of bpd compare ({exc})")

    # --- removing a run ---------------------------------------------------------------
    def _ask_removal(self, run: Path) -> bool:
        app = QApplication.instance()
        if app is not None and app.property("bpd_no_dialogs"):
            return False  # never delete without a person's yes
        answer = QMessageBox.question(
            self,
            "Remove run",
            f"Delete {run.name} and everything in its folder?\n\n{run}\n\nThis cannot be undone.",
            QMessageBox.Yes | QMessageBox.Cancel,
            QMessageBox.Cancel,
        )
        return answer == QMessageBox.Yes

    def remove_selected(self) -> bool:
        run = self.selected_run()
        if run is None:
            return False
        job = self.queue.find(run)
        trainer = RunFolder(run).trainer() if run.is_dir() else None
        if (job is not None and (job.is_active or job.is_queued)) or trainer is not None:
            who = f" (process {trainer.get('pid')})" if trainer and trainer.get("pid") else ""
            show_error(self, "The run is training",
                       f"{run.name} is training{who}. Cancel it on the Train page first, "
                       "then remove it.")  # fmt: skip
            return False
        if not self.confirm_removal(run):
            return False
        try:
            shutil.rmtree(run)
        except OSError as exc:
            show_error(self, "The run was not removed", f"{run}: {exc}")
            return False
        if job is not None:
            self.queue.forget(job)
        self.refresh()
        return True

    def _review(self) -> None:
        run = self.selected_run()
        if run is not None:
            self.review_requested.emit(str(run))

    def _open(self, report: bool) -> None:
        run = self.selected_run()
        if run is None:
            return
        target = RunFolder(run).report_path if report else run
        if report and not target.is_file():
            if not self.reporter.is_running():
                self.report_button.setEnabled(False)
                self.report_button.setText("Writing report…")
                self.reporter.start(["report", str(run)])
            return
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(target)))

    def _on_reported(self, ok: bool, message: str) -> None:
        self.report_button.setText("Open report")
        self.report_button.setEnabled(True)
        if not ok:
            show_error(self, "The report was not written", message)
            return
        path = message.strip().splitlines()[-1] if message.strip() else ""
        if path:
            QDesktopServices.openUrl(QUrl.fromLocalFile(path))


def _recorded_train(run_dir: Path) -> dict | None:
    try:
        return RunFolder(run_dir).config().get("train")
    except (OSError, InputError):
        return None


def _train_settings(job) -> dict | None:
    """The run's TrainConfig JSON: from its events, else from its config.json (a run
    copied without its event stream)."""
    return job.progress.config or _recorded_train(job.run_dir)


def short_settings(cfg: dict | None) -> str:
    """The Settings column: what differs between runs, short enough to fit the row
    (the whole description is its tooltip and the details' headline)."""
    if not cfg:
        return ""
    recipe = str(cfg.get("strategy", "?"))
    epochs = str(cfg.get("epochs", "?"))
    if recipe.startswith("probe"):
        epochs = f"{cfg.get('probe_epochs', '?')}+{epochs}" if "+" in recipe else "probe"
    if (cfg.get("cutmix_finetune") or {}).get("enabled"):
        recipe += "+CutMix"
    folds = f"{cfg.get('cv_folds', '?')}×{cfg.get('cv_repeats', '?')} folds"
    size = f"{cfg.get('resolution', '?')} px"
    return f"{cfg.get('init', '?')} · {recipe} · {folds} · {epochs} ep · {size}"


def _summary(folder: RunFolder) -> dict | None:
    try:
        return folder.summary()
    except (OSError, InputError):  # a damaged summary: the details say why
        return None
