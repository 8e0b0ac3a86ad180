"""Train page: the run form, the queue of runs, and the selected run's live progress.

The form opens on the preset that fits this machine (`bpd env --json` in a child
process: the app never imports torch itself) and shows whether the chosen
initialisation's weights are present (`bpd weights status`, shared with Settings).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from bpd_gui.cohort_session import CohortSession
from bpd_gui.jobs.estimate import BenchRunner
from bpd_gui.jobs.job_queue import JobQueue, is_run_dir, new_run_dir
from bpd_gui.jobs.run_job import RunJob
from bpd_gui.jobs.run_progress import format_duration
from bpd_gui.messages import show_error
from bpd_gui.widgets.cli_process import CliProcess
from bpd_gui.widgets.run_list import RunList
from bpd_gui.widgets.run_panel import RunPanel
from bpd_gui.widgets.study_launcher import StudyLauncher
from bpd_gui.widgets.train_form import TrainForm
from bpd_gui.widgets.weights_panel import INIT_NAMES, shared_status
from core import paths
from core.errors import InputError
from core.runs.run_config import RunConfig, RunOptions
from core.training.config import PRESETS, TrainConfig, preset
from core.training.estimate import estimate_seconds

REDRAW_MS = 300  # plots redraw at most this often, however fast events arrive


class TrainView(QWidget):
    def __init__(self, session: CohortSession, queue: JobQueue, parent=None):
        super().__init__(parent)
        self.session, self.queue = session, queue
        self.form = TrainForm()
        self.machine_label = QLabel("Checking this machine's device…")
        self.machine_label.setObjectName("machine_label")
        self.machine_label.setWordWrap(True)
        self.machine: dict | None = None  # `bpd env --json`
        self.env_process = CliProcess(self)
        self.env_process.finished.connect(self._on_env)
        self.weights = shared_status()
        self.weights.changed.connect(self._show_init_status)
        self.weights.failed.connect(self._show_init_status)  # a bound slot: dropped with the page
        self.bench = BenchRunner(self)
        self._speed: dict[tuple, float] = {}  # (resolution, batch, device) -> images/s
        self._bench_info: dict[tuple, dict] = {}  # the same key -> path, workers
        self.cohort_label = QLabel()
        self.cohort_label.setWordWrap(True)
        self.estimate_label = QLabel()
        self.estimate_label.setObjectName("estimate_label")
        self.estimate_label.setWordWrap(True)
        self.estimate_button = QPushButton("Measure speed")
        self.estimate_button.setToolTip("Time a few training steps at these settings")
        self.estimate_button.clicked.connect(self.measure_speed)
        self.start_button = QPushButton("Start run")
        self.start_button.setObjectName("start_button")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start_run)
        self.study_button = QPushButton("Start study…")
        self.study_button.setObjectName("study_button")
        self.study_button.setToolTip(
            "bpd study: every initialisation × strategy of the paper (docs/method.md) with "
            "these settings, on identical folds and seeds; the Results page's Study tab "
            "shows the table and forest plot"
        )
        self.study_button.clicked.connect(self.start_study)
        self.study = StudyLauncher(self)
        self.study.arm_started.connect(lambda arm: self.open_run(Path(arm)))
        self.study.ended.connect(self._on_study_ended)

        settings_box = QGroupBox("New run")
        settings_box.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Fixed)  # the list gives way
        box_layout = QVBoxLayout(settings_box)
        box_layout.addWidget(self.cohort_label)
        box_layout.addWidget(self.machine_label)
        box_layout.addWidget(self.form)
        est_row = QHBoxLayout()
        est_row.addWidget(self.estimate_label, 1)
        est_row.addWidget(self.estimate_button)
        box_layout.addLayout(est_row)
        start_row = QHBoxLayout()
        start_row.addWidget(self.start_button, 1)
        start_row.addWidget(self.study_button)
        box_layout.addLayout(start_row)

        self.runs = RunList(queue)
        self.runs.job_selected.connect(self.show_job)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancel_button")
        self.cancel_button.setToolTip("Stop after the current batch; the run can be resumed")
        self.cancel_button.clicked.connect(self.cancel_selected)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setObjectName("resume_button")
        self.resume_button.setToolTip(
            "Continue from the last checkpoint (bpd resume; at most about a minute is redone)"
        )
        self.resume_button.clicked.connect(self.resume_selected)
        self.folder_button = QPushButton("Folder")
        self.folder_button.setToolTip("Open the run folder")
        self.folder_button.clicked.connect(self.open_folder)
        self.open_run_button = QPushButton("Open run…")
        self.open_run_button.clicked.connect(self.choose_run)
        self.again_button = QPushButton("Run again")
        self.again_button.setObjectName("again_button")
        self.again_button.setToolTip("Load this run's settings into the form above")
        self.again_button.clicked.connect(self.run_again)
        run_buttons = QGridLayout()  # two rows: one row of five made the panel too wide
        for i, b in enumerate((self.cancel_button, self.resume_button, self.again_button,
                               self.folder_button, self.open_run_button)):  # fmt: skip
            run_buttons.addWidget(b, i // 3, i % 3)
        runs_box = QGroupBox("Runs")
        runs_layout = QVBoxLayout(runs_box)
        runs_layout.addWidget(self.runs)
        runs_layout.addLayout(run_buttons)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(settings_box)
        left_layout.addWidget(runs_box, 1)
        scroll = QScrollArea()
        scroll.setWidget(left)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)  # the form fits its width
        scroll.setMinimumWidth(380)

        self.panel = RunPanel()
        split = QSplitter(Qt.Horizontal)
        split.addWidget(scroll)
        split.addWidget(self.panel)
        split.setStretchFactor(1, 1)
        split.setSizes([400, 800])
        layout = QVBoxLayout(self)
        layout.addWidget(split)

        self.shown_job: RunJob | None = None
        self._dirty = False
        self._redraw = QTimer(self)
        self._redraw.setInterval(REDRAW_MS)
        self._redraw.timeout.connect(self._redraw_if_dirty)
        self._redraw.start()
        self.redraws = 0

        self.form.changed.connect(self.update_estimate)
        self.form.changed.connect(self._show_init_status)

        self.bench.measured.connect(self._on_measured)
        self.bench.unavailable.connect(self._on_bench_unavailable)
        session.cohort_changed.connect(self._on_cohort)
        queue.job_updated.connect(self._on_job_updated)
        queue.changed.connect(self._update_buttons)
        queue.start_failed.connect(
            lambda job, msg: show_error(self, "The run could not start", msg)
        )
        self._on_cohort(session.cohort)
        self.env_process.start(["env", "--json"])
        self.weights.refresh()
        self._show_init_status()

    # --- the machine and the weights --------------------------------------------------
    def _on_env(self, ok: bool, message: str) -> None:
        import json

        try:
            self.machine = json.loads(message.splitlines()[-1]) if ok else None
        except (ValueError, IndexError):
            self.machine = None
        if not self.machine:
            self.machine_label.setText(
                "Could not check this machine's device; the form shows cpu-fast, which runs "
                "anywhere."
            )
            return
        self.apply_machine_defaults(self.machine)

    def apply_machine_defaults(self, machine: dict) -> None:
        """One line saying what this machine is and which preset the form opened on;
        the preset is loaded only if the user has not changed the form yet."""
        suggested = str(machine.get("suggested_preset") or "cpu-fast")
        if not self.form.user_edited and suggested in PRESETS:
            self.form.load_config(preset(suggested), suggested)
        self.machine_label.setText(
            f"This machine: {machine.get('reason', machine.get('device', '?'))}. "
            f"Suggested preset: <b>{suggested}</b>."
        )

    def _show_init_status(self, *_: Any) -> None:
        init = self.form.init.currentText()
        if init not in INIT_NAMES:
            self.form.set_init_status("built in", True, "random: no weights file needed")
            return
        row = (self.weights.rows or {}).get(init)
        if row is None:
            self.form.set_init_status("checking…", None, "asking bpd weights status")
        elif row["present"]:
            self.form.set_init_status("✓ weights here", True, f"{row['path']}")
        else:
            self.form.set_init_status(
                "✗ weights missing",
                False,
                f"{row['file_name']} is not on this machine: download it from {row['url']} "
                "and import it on the Settings page, or choose random.",
            )

    # --- cohort + estimate -----------------------------------------------------------
    def _on_cohort(self, cohort: Any) -> None:
        if cohort is None:
            self.cohort_label.setText("Open a cohort first (Cohort page or File ▸ Open table).")
        else:
            self.cohort_label.setText(
                f"Cohort: <b>{Path(str(cohort.table_path)).name}</b> — {cohort.n_patients} "
                f"patients ({cohort.n_positive} positive), {cohort.n_images} images"
            )
        self.update_estimate()
        self._update_buttons()

    def _speed_key(self) -> tuple:
        cfg = self.form.config()
        return (cfg.resolution, cfg.batch_size, cfg.device)

    def update_estimate(self) -> None:
        """core's work model (core.training.estimate) at the measured work units/s."""
        cohort, speed = self.session.cohort, self._speed.get(self._speed_key())
        if self.bench.running():
            self.estimate_label.setText("Measuring a few training steps…")
        elif cohort is None:
            self.estimate_label.setText("Duration: open a cohort to estimate.")
        elif speed is None:
            self.estimate_label.setText("Duration: press Measure speed for an estimate.")
        else:
            info = self._bench_info.get(self._speed_key(), {})
            workers = int(info.get("workers") or 1)
            secs = estimate_seconds(
                self.form.config(), cohort.n_patients, cohort.n_images, speed,
                final_model=self.form.final_model.isChecked(), workers=workers,
            )  # fmt: skip
            at_once = f"; {workers} folds at once" if workers > 1 else ""
            path = f"{info['path']}{at_once}; " if info.get("path") else ""
            self.estimate_label.setText(
                f"Estimated duration: about <b>{format_duration(secs)}</b> "
                f"({path}measured {speed:.0f} work units/s at these settings)"
            )

    def measure_speed(self) -> None:
        cfg = self.form.config()
        self.bench.measure(cfg.resolution, cfg.batch_size, cfg.device)
        self.estimate_button.setEnabled(False)
        self.update_estimate()

    def _on_measured(self, speed: float) -> None:
        self._speed[self._speed_key()] = speed
        self._bench_info[self._speed_key()] = dict(self.bench.last_result)
        self.estimate_button.setEnabled(True)
        self.update_estimate()

    def _on_bench_unavailable(self, reason: str) -> None:
        self.estimate_button.setEnabled(True)
        self.estimate_label.setText(
            f"No quick measurement ({reason}); the run's ETA comes from its first epoch."
        )

    # --- starting runs ----------------------------------------------------------------
    def build_run_config(self) -> RunConfig:
        """The form's recipe and the Cohort page's source, as the RunConfig the run's
        `bpd train --config FILE` starts from (every column as the user mapped it)."""
        src = self.session.source
        if src is None or self.session.cohort is None:
            raise ValueError("Open and check a cohort first (Cohort page).")
        if not self.session.cohort.is_usable():
            raise ValueError(
                "The cohort needs at least two patients of each outcome to train. "
                "Check the outcome mapping on the Cohort page."
            )
        try:
            return RunConfig(self.form.config(), src.core_source(), self.form.options())
        except InputError as exc:  # e.g. no positive value mapped yet
            raise ValueError(str(exc)) from None

    def start_run(self) -> RunJob | None:
        try:
            run_config = self.build_run_config()
        except ValueError as exc:
            show_error(self, "Cannot start the run", str(exc))
            return None
        from bpd_gui.widgets.weights_panel import refusal_for

        missing = refusal_for(run_config.train.init)
        if missing:  # refused here, not 15 s later with a traceback from the job
            show_error(self, "Pretrained weights missing", missing)
            return None
        run_dir = new_run_dir(paths.runs_dir(), self.form.run_name())
        job = self.queue.enqueue_train(run_config, run_dir)
        self.runs.select_job(job)  # shows it, through the selection
        return job

    def start_study(self) -> Path | None:
        """The form's recipe as the base of a `bpd study` (all inits × strategies)."""
        from core.study.config import StudyConfig

        try:
            run_config = self.build_run_config()
            config = StudyConfig(
                cohort=run_config.cohort,
                train=run_config.train,
                preset=self.form.preset.currentText(),
            )
            study_dir = self.study.start(config)
        except (ValueError, OSError) as exc:
            show_error(self, "Cannot start the study", str(exc))
            return None
        self.study_button.setEnabled(False)
        self.estimate_label.setText(
            f"Study started: {len(config.arms())} arms in {study_dir.name}; each arm appears "
            "in the list below as it trains (arms whose weights are missing are skipped)."
        )
        return study_dir

    def _on_study_ended(self, code: int) -> None:
        self.study_button.setEnabled(True)
        where = self.study.study_dir.name if self.study.study_dir else "the study"
        if code == 0:
            self.estimate_label.setText(f"{where} finished: Results ▸ Study.")
        else:
            self.estimate_label.setText(
                f"{where} stopped (exit code {code}); continue it with "
                f"<code>bpd study resume {self.study.study_dir}</code>."
            )

    # --- run list actions -------------------------------------------------------------
    def cancel_selected(self) -> None:
        job = self.runs.selected_job()
        if job is None:
            return
        if job.is_queued:
            self.queue.remove_queued(job)
        else:
            job.cancel()
        self._update_buttons()

    def resume_selected(self) -> None:
        job = self.runs.selected_job()
        if job is not None:
            self.queue.enqueue_resume(job)
            self.show_job(job)

    def run_again(self) -> None:
        """The selected run's recipe and options back in the form, to start it again
        (e.g. after a failure, or with one setting changed)."""
        job = self.runs.selected_job()
        if job is None:
            return
        try:
            if job.run_config is not None:
                cfg, options = job.run_config.train, job.run_config.options
            else:  # only the recipe and options: older and federated runs have them too
                recorded = job.folder.config()
                cfg = TrainConfig.from_json(recorded.get("train") or {})
                options = RunOptions.from_json(recorded.get("options"))
        except (InputError, OSError) as exc:
            show_error(self, "Cannot read the run's settings", str(exc))
            return
        self.form.load_config(cfg, options=options)
        self.form.user_edited = True  # the machine's defaults must not replace it
        self.form.name.setText(_base_name(job.name))
        self.estimate_label.setText(f"Settings of {job.name} loaded; {self.estimate_label.text()}")

    def open_folder(self) -> None:
        job = self.runs.selected_job()
        if job is not None and job.run_dir.exists():
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(job.run_dir)))

    def choose_run(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open run folder", str(paths.runs_dir()))
        if folder:
            self.open_run(Path(folder))

    def open_run(self, folder: Path) -> RunJob | None:
        if not is_run_dir(folder):
            show_error(self, "Not a run folder", f"{folder} has no run record or event stream.")
            return None
        job = self.queue.open_run(folder)
        self.runs.select_job(job)
        return job

    # --- showing a run ----------------------------------------------------------------
    def show_job(self, job: RunJob | None) -> None:
        self.shown_job = job
        self.panel.show_job(job)
        self._update_buttons()

    def _on_job_updated(self, job: RunJob) -> None:
        if job is self.shown_job:
            self._dirty = True
        self._update_buttons()

    def _redraw_if_dirty(self) -> None:
        if self._dirty and self.shown_job is not None:
            self._dirty = False
            self.redraws += 1
            self.panel.show_job(self.shown_job)

    def _update_buttons(self) -> None:
        job = self.runs.selected_job()
        active = self.queue.active_job()
        self.start_button.setEnabled(self.session.cohort is not None)
        self.study_button.setEnabled(
            self.session.cohort is not None and not self.study.is_running()
        )
        self.start_button.setText("Add to queue" if active is not None else "Start run")
        self.cancel_button.setEnabled(job is not None and (job.is_active or job.is_queued))
        self.resume_button.setEnabled(
            job is not None
            and not job.is_active
            and not job.is_queued
            and job.progress.status in ("cancelled", "failed")
        )
        self.folder_button.setEnabled(job is not None)
        self.again_button.setEnabled(
            job is not None and (job.run_config is not None or job.folder.has_config)
        )


def _base_name(run_name: str) -> str:
    """'20260101-120000-xrv-probe' -> 'xrv-probe' (the date is the new run's own)."""
    parts = run_name.split("-", 2)
    return parts[2] if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit() else run_name
