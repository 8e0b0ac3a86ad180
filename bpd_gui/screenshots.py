"""`bpd-gui --screenshots DIR`: render every view to DIR/<view>.png and exit.

Uses the demo cohort and a finished run from the runs folder; without one, it trains a
small run (demo cohort, 64 px, 2 folds, probe + 4 epochs) through the real `bpd train`.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from bpd_gui.jobs import job_client
from bpd_gui.jobs.job_queue import new_run_dir
from bpd_gui.main_window import PAGES, MainWindow
from core import paths

log = logging.getLogger(__name__)
SIZE = (1280, 820)
# Small, but with every phase: the probe, then layer4, layer3 and layer2 unfreezing.
# Random init: it needs no downloaded weights.
TINY_RUN = dict(init="random", strategy="probe+progressive", cv_folds=2, cv_repeats=1,
                epochs=4, resolution=64, batch_size=16, device="cpu")  # fmt: skip


def wait_for(app: QApplication, done: Callable[[], bool], timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        app.processEvents()
        if done():
            return True
        time.sleep(0.02)
    return done()


def finished_runs() -> list[Path]:
    runs = paths.runs_dir()
    found = [
        p for p in (runs.iterdir() if runs.is_dir() else [])
        if job_client.read_state(p).get("status") == "finished" and job_client.read_summary(p)
    ]  # fmt: skip
    return sorted(found)


def render_all(app: QApplication, out_dir: str | Path, train_timeout_s: float = 900) -> int:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    app.setProperty("bpd_no_dialogs", True)
    settings_file = Path(tempfile.mkdtemp()) / "screenshots.ini"
    window = MainWindow(QSettings(str(settings_file), QSettings.IniFormat))
    window.close_policy = "leave"
    window.resize(*SIZE)
    window.show()
    try:
        return _render(app, window, out, train_timeout_s)
    finally:
        window.close()


def _render(app: QApplication, window: MainWindow, out: Path, train_timeout_s: float) -> int:
    window.open_demo_cohort()
    if not wait_for(app, lambda: window.session.cohort is not None, 60):
        log.error("the demo cohort did not open")
        return 1
    cohort_view = window.pages["cohort"]
    # decode every image once, as a user would, so the problem list shows what it finds
    table_level = window.session.cohort
    cohort_view.check_images()
    wait_for(app, lambda: window.session.cohort is not table_level, 300)
    total = sum(1 for p in window.session.cohort.patients if p.images)
    wait_for(app, lambda: cohort_view.patients.thumbnails_loaded >= min(total, 40), 60)
    _select_interesting_patient(window)
    _render_crop_tool(app, window, out)

    run = _finished_or_tiny_run(app, window, train_timeout_s)
    if run is not None:
        _render_live_run(app, window, out, train_timeout_s)
    train = window.pages["train"]
    if run is not None:
        job = window.queue.open_run(run)
        train.runs.select_job(job)
        train.show_job(job)
    wait_for(app, lambda: not window.tasks.busy(), 30)
    for name in PAGES:
        window.show_page(name)
        if run is not None and name in PREPARE:
            PREPARE[name](app, window, Path(run))
        wait_for(app, lambda: False, 0.3)  # let layouts and plots settle
        path = out / f"{name}.png"
        window.grab().save(str(path))
        log.info("wrote %s", path)
        if run is not None and name == "results":
            _results_plots(app, window, out)
    return 0


def _prepare_review(app: QApplication, window: MainWindow, run: Path) -> None:
    """The run open, its Grad-CAM computed (the real `bpd explain`), a correctly
    predicted positive infant with a non-empty map shown, overlay on."""
    review = window.pages["review"]
    if review.run_dir != run:
        review.open_run(run)
    wait_for(app, lambda: not review.explainer.is_running(), 900)
    ex = review.explanations
    rows = review.table_data.rows if review.table_data else []
    shown = [r for r in rows if ex and r.patient_id in ex.rows and ex.peak(r.patient_id) > 0]
    pick = next((r for r in shown if r.outcome == "TP"), shown[0] if shown else None)
    if pick is not None:
        review.select_patient(pick.patient_id)
        review.overlay_check.setChecked(True)
        wait_for(app, lambda: review.is_showing(pick.patient_id), 30)


def _prepare_predict(app: QApplication, window: MainWindow, run: Path) -> None:
    """Two demo radiographs and a DICOM scored by the run, with their overlays."""
    predict = window.pages["predict"]
    if predict.rows:
        return
    # new to the run: the test images are not in the demo cohort it trained on
    data = Path(__file__).resolve().parents[1] / "tests" / "data"
    files = [data / "images" / "person1_bacteria_1.jpeg", data / "images" / "IM-0115-0001.jpeg",
             data / "dicom" / "rsna_cr_jpeg_baseline_mono2.dcm"]  # fmt: skip
    files = [f for f in files if f.is_file()]
    if not files:  # an installed app without the tests: two demo images
        images = paths.demo_cohort_table().parent / "images"
        files = sorted(images.glob("PNEUMONIA/*"))[:1] + sorted(images.glob("NORMAL/*"))[:1]
    predict.set_model(run)
    predict.clear_inputs()
    predict.add_files([str(f) for f in files])
    predict.start()
    wait_for(app, lambda: not predict.is_running(), 300)
    wait_for(app, lambda: False, 0.3)


def _render_live_run(app: QApplication, window: MainWindow, out: Path, timeout_s: float) -> None:
    """train-live.png: a tiny run (probe, then fine-tuning) caught while it trains, with
    three fine-tuning epochs of its first fold plotted; then it is stopped."""
    train = window.pages["train"]
    try:
        run_config = train.build_run_config()
    except ValueError as exc:
        log.warning("no live run for the screenshots: %s", exc)
        return
    live = dict(TINY_RUN, epochs=8, cv_folds=3, resolution=32)  # quick on a loaded CPU
    run_config = run_config.replace(train=run_config.train.replace(**live))
    job = window.queue.enqueue_train(run_config, new_run_dir(paths.runs_dir(), "live"))
    train.runs.select_job(job)
    window.show_page("train")

    def far_enough() -> bool:  # three fine-tuning epochs after the probe
        fold = job.progress.folds.get(job.progress.current_fold or "")
        tuned = [r for r in fold.epochs.values() if r.phase != "probe"] if fold else []
        return len(tuned) >= 3 or not job.is_active

    wait_for(app, far_enough, timeout_s)
    wait_for(app, lambda: False, 0.6)  # a redraw of the plots
    window.grab().save(str(out / "train-live.png"))
    log.info("wrote %s", out / "train-live.png")
    job.cancel()
    wait_for(app, lambda: not job.is_active, 60)


def _prepare_results(app: QApplication, window: MainWindow, run: Path) -> None:
    """The finished run selected (not the stopped live one) with its results read."""
    results = window.pages["results"]
    results.select_run(run)
    wait_for(app, lambda: results.details.results is not None and not results.is_loading(), 120)


def _results_plots(app: QApplication, window: MainWindow, out: Path) -> None:
    """results-plots.png: the selected run's ROC, precision-recall and calibration."""
    tabs = window.pages["results"].details.tabs
    tabs.setCurrentIndex(1)
    wait_for(app, lambda: False, 0.4)
    window.grab().save(str(out / "results-plots.png"))
    tabs.setCurrentIndex(0)


def _prepare_settings(app: QApplication, window: MainWindow, run: Path) -> None:
    weights = window.pages["settings"].weights
    wait_for(app, lambda: weights.status.rows is not None, 120)


PREPARE = {"review": _prepare_review, "predict": _prepare_predict, "settings": _prepare_settings,
           "results": _prepare_results}  # fmt: skip


def _render_crop_tool(app: QApplication, window: MainWindow, out: Path) -> None:
    """crop.png: the Cohort page's crop tool with automatic suggestions to review."""
    from bpd_gui.dialogs.crop_dialog import save_screenshot

    cohort = window.session.cohort
    root = Path(cohort.images_root)
    images = [(str(r.path.relative_to(root)), r.path) for p in cohort.patients for r in p.images]
    log.info("wrote %s", save_screenshot(app, images, out / "crop.png"))


def _select_interesting_patient(window: MainWindow) -> None:
    cohort = window.session.cohort
    view = window.pages["cohort"]
    with_problem = next((p.patient_id for p in cohort.problems if p.patient_id), None)
    pid = with_problem or (cohort.patients[0].patient_id if cohort.patients else None)
    if pid is not None:
        view.select_patient(pid)


def _finished_or_tiny_run(app: QApplication, window: MainWindow, timeout_s: float):
    existing = finished_runs()
    if existing:
        return existing[-1]
    try:
        run_config = window.pages["train"].build_run_config()
    except ValueError as exc:
        log.warning("no run for the screenshots: %s", exc)
        return None
    run_config = run_config.replace(train=run_config.train.replace(**TINY_RUN))
    job = window.queue.enqueue_train(run_config, new_run_dir(paths.runs_dir(), "screenshot-demo"))
    window.pages["train"].runs.select_job(job)
    log.info("training a tiny demo run for the screenshots in %s", job.run_dir)
    if not wait_for(app, lambda: not job.is_active and not job.is_queued, timeout_s):
        job.cancel()
        log.warning("the tiny run did not finish in %.0f s", timeout_s)
        return None
    if job.progress.status != "finished":
        log.warning("the tiny run ended as %s: %s", job.progress.status, job.progress.error)
        return job.run_dir  # still worth showing: the app shows the failure
    return job.run_dir
