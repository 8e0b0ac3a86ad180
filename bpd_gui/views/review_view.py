"""Review: every tested infant of a run, its radiograph(s) and its out-of-fold Grad-CAM.

The table comes from core.explain.review; the maps from the run's explanations cache,
which `bpd explain RUN --all` fills in a child process (the window never computes a
map). Keys: Up/Down (or J/K) next/previous infant, PgDown/PgUp next/previous image of
the infant, O overlay on/off, F fit, +/- zoom.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PySide6.QtCore import QItemSelectionModel, Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSlider,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from bpd_gui.messages import show_error
from bpd_gui.widgets.cli_process import CliProcess
from bpd_gui.widgets.colour_bar import ColourBar
from bpd_gui.widgets.image_viewer import WINDOW_PRESETS, ImageViewer
from bpd_gui.widgets.review_table import ReviewFilter, ReviewTableModel
from bpd_gui.workers import TaskRunner
from core import paths
from core.explain import overlay

log = logging.getLogger(__name__)
RESULT_FILTERS = (("All infants", "all"), ("Errors (FP + FN)", "errors"), ("TP", "TP"),
                  ("FP", "FP"), ("TN", "TN"), ("FN", "FN"))  # fmt: skip
SCALING_CHOICES = (("One scale for the whole run", "shared"), ("Each image to its own maximum",
                   "image"))  # fmt: skip


def _load_pixels(path: Path) -> np.ndarray:
    from core.cohort.images import read_image

    return read_image(path).pixels


class ReviewView(QWidget):
    run_opened = Signal(str)

    def __init__(self, tasks: TaskRunner, parent=None):
        super().__init__(parent)
        self.tasks = tasks
        self.run_dir: Path | None = None
        self.table_data = None  # core.explain.review.ReviewTable
        self.explanations = None  # core.explain.batch.CachedExplanations
        self.patient_id: str | None = None
        self.image_index = 0
        self._load_token = 0
        self.pixels_for: Path | None = None  # the image the viewer shows
        self.overlay_state = "none"  # "shown", "empty" (all-zero map) or "none"
        self.current_values: np.ndarray | None = None  # display values of the overlay
        self.explainer = CliProcess(self)
        self.explainer.progress.connect(self._on_explain_progress)
        self.explainer.finished.connect(self._on_explain_finished)
        self._build()
        self._shortcuts()
        self.refresh_runs()

    # --- construction ---------------------------------------------------------------
    def _build(self) -> None:
        self.run_combo = QComboBox()
        self.run_combo.setObjectName("review_run")
        self.run_combo.setMinimumWidth(320)
        self.run_combo.activated.connect(lambda _i: self._open_selected_run())
        open_button = QPushButton("Open run folder…")
        open_button.clicked.connect(self._choose_run)
        self.run_info = QLabel("No run open.")
        self.run_info.setObjectName("review_run_info")
        self.run_info.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(QLabel("Run:"))
        top.addWidget(self.run_combo, 1)
        top.addWidget(open_button)

        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter by infant id")
        self.result_filter = QComboBox()
        for text, key in RESULT_FILTERS:
            self.result_filter.addItem(text, key)
        self.model = ReviewTableModel(self)
        self.proxy = ReviewFilter(self)
        self.proxy.setSourceModel(self.model)
        self.filter_edit.textChanged.connect(self.proxy.set_text)
        self.result_filter.currentIndexChanged.connect(
            lambda _i: self.proxy.set_result(self.result_filter.currentData())
        )
        self.table = QTableView()
        self.table.setObjectName("review_table")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setDefaultSectionSize(24)
        self.table.selectionModel().currentRowChanged.connect(lambda cur, _p: self._on_row(cur))
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        filters = QHBoxLayout()
        filters.addWidget(self.filter_edit, 1)
        filters.addWidget(self.result_filter)
        lv.addLayout(filters)
        lv.addWidget(self.table, 1)

        self.caption = QLabel("Choose an infant.")
        self.caption.setObjectName("review_caption")
        self.caption.setWordWrap(True)
        self.viewer = ImageViewer()
        self.viewer.setMinimumSize(200, 150)
        self.colour_bar = ColourBar()
        view_row = QHBoxLayout()
        view_row.addWidget(self.viewer, 1)
        view_row.addWidget(self.colour_bar)

        self.overlay_check = QCheckBox("Grad-CAM overlay (O)")
        self.overlay_check.setObjectName("overlay_check")
        self.overlay_check.setChecked(True)
        self.overlay_check.toggled.connect(self._on_overlay_toggled)
        self.opacity = QSlider(Qt.Horizontal)
        self.opacity.setObjectName("overlay_opacity")
        self.opacity.setRange(0, 100)
        self.opacity.setValue(40)
        self.opacity.setMaximumWidth(140)
        self.opacity.valueChanged.connect(lambda v: self.viewer.set_overlay_opacity(v / 100))
        self.opacity.setToolTip("Overlay opacity")
        self.scaling = QComboBox()
        self.scaling.setObjectName("overlay_scaling")
        for text, key in SCALING_CHOICES:
            self.scaling.addItem(text, key)
        self.scaling.currentIndexChanged.connect(lambda _i: self._show_overlay())
        row1 = QHBoxLayout()
        row1.addWidget(self.overlay_check)
        row1.addWidget(QLabel("Opacity"))
        row1.addWidget(self.opacity)
        row1.addWidget(QLabel("Scaling"))
        row1.addWidget(self.scaling)
        row1.addStretch(1)

        self.window_combo = QComboBox()
        self.window_combo.setObjectName("window_preset")
        for name, centre, width in WINDOW_PRESETS:
            self.window_combo.addItem(name, (centre, width))
        self.window_combo.activated.connect(
            lambda _i: self.viewer.set_window(*self.window_combo.currentData())
        )
        self.window_combo.setToolTip("Window/level presets; or drag with the right mouse button")
        fit = QPushButton("Fit (F)")
        fit.clicked.connect(self.viewer.fit)
        zoom_in, zoom_out = QPushButton("+"), QPushButton("−")
        for b, f in ((zoom_in, 1.25), (zoom_out, 0.8)):
            b.setMaximumWidth(32)
            b.clicked.connect(lambda _=False, f=f: self.viewer.zoom(f))
        self.prev_image = QPushButton("◀")
        self.next_image = QPushButton("▶")
        self.image_label = QLabel("")
        self.prev_image.clicked.connect(lambda: self.step_image(-1))
        self.next_image.clicked.connect(lambda: self.step_image(1))
        for b in (self.prev_image, self.next_image):
            b.setMaximumWidth(32)
            b.setToolTip("Previous / next image of this infant (PgUp / PgDown)")
        export = QPushButton("Export PNG…")
        export.setObjectName("export_png")
        export.clicked.connect(self._choose_export)
        row2 = QHBoxLayout()
        row2.addWidget(QLabel("Window"))
        row2.addWidget(self.window_combo)
        row2.addWidget(fit)
        row2.addWidget(zoom_in)
        row2.addWidget(zoom_out)
        row2.addSpacing(12)
        row2.addWidget(self.prev_image)
        row2.addWidget(self.image_label)
        row2.addWidget(self.next_image)
        row2.addStretch(1)
        row2.addWidget(export)

        self.scaling_note = QLabel("")
        self.scaling_note.setObjectName("scaling_note")
        self.scaling_note.setWordWrap(True)
        self.explain_button = QPushButton("Compute Grad-CAM for every infant")
        self.explain_button.setObjectName("explain_button")
        self.explain_button.clicked.connect(self.compute_explanations)
        self.explain_progress = QProgressBar()
        self.explain_progress.setRange(0, 100)
        self.explain_progress.setVisible(False)
        self.explain_status = QLabel("")
        self.explain_status.setWordWrap(True)
        explain_row = QHBoxLayout()
        explain_row.addWidget(self.explain_button)
        explain_row.addWidget(self.explain_progress, 1)
        explain_row.addWidget(self.explain_status, 2)

        self.details = QLabel("")
        self.details.setObjectName("dicom_details")
        self.details.setWordWrap(True)
        self.details.setTextFormat(Qt.RichText)
        details_box = QGroupBox("Image")
        QFormLayout(details_box).addRow(self.details)

        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(0, 0, 0, 0)
        rv.addWidget(self.caption)
        rv.addLayout(view_row, 1)
        rv.addLayout(row1)
        rv.addLayout(row2)
        rv.addWidget(self.scaling_note)
        rv.addLayout(explain_row)
        rv.addWidget(details_box)

        split = QSplitter(Qt.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        split.setSizes([500, 750])  # the table's columns visible at 1280 px
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.run_info)
        layout.addWidget(split, 1)

    def _shortcuts(self) -> None:
        def key(seq, slot):
            sc = QShortcut(QKeySequence(seq), self)
            sc.setContext(Qt.WidgetWithChildrenShortcut)
            sc.activated.connect(slot)

        key("J", lambda: self.step_infant(1))
        key("K", lambda: self.step_infant(-1))
        key(Qt.Key_PageDown, lambda: self.step_image(1))
        key(Qt.Key_PageUp, lambda: self.step_image(-1))
        key("O", self.overlay_check.toggle)
        key("F", self.viewer.fit)
        key("+", lambda: self.viewer.zoom(1.25))
        key("-", lambda: self.viewer.zoom(0.8))

    # --- runs -----------------------------------------------------------------------
    def refresh_runs(self) -> None:
        from core.explain.review import reviewable_runs

        current = self.run_combo.currentData()
        self.run_combo.blockSignals(True)
        self.run_combo.clear()
        for path in reviewable_runs(paths.runs_dir()):
            self.run_combo.addItem(path.name, str(path))
        if self.run_dir is not None and self.run_combo.findData(str(self.run_dir)) < 0:
            self.run_combo.addItem(self.run_dir.name, str(self.run_dir))
        index = self.run_combo.findData(current) if current else -1
        self.run_combo.setCurrentIndex(max(index, 0) if self.run_combo.count() else -1)
        self.run_combo.blockSignals(False)

    def _open_selected_run(self) -> None:
        path = self.run_combo.currentData()
        if path:
            self.open_run(path)

    def _choose_run(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open run folder", str(paths.runs_dir()))
        if folder:
            self.open_run(folder)

    def open_newest_if_none(self) -> None:
        """On first showing the page: the newest finished run, so there is something to see."""
        if self.run_dir is None and self.run_combo.count():
            self.run_combo.setCurrentIndex(0)
            self._open_selected_run()

    def open_run(self, run_dir: str | Path) -> None:
        from core.errors import BPDError
        from core.explain.batch import run_explanations
        from core.explain.review import review_table

        try:
            table = review_table(run_dir)
        except BPDError as exc:
            show_error(self, "Cannot review this run", str(exc))
            return
        self.explainer.cancel()
        self.run_dir = Path(run_dir)
        self.table_data = table
        self.explanations = run_explanations(self.run_dir)
        self.model.set_rows(table.rows, table.threshold)
        self.table.sortByColumn(1, Qt.DescendingOrder)
        self.refresh_runs()
        self.run_combo.setCurrentIndex(self.run_combo.findData(str(self.run_dir)))
        counts = {k: sum(r.outcome == k for r in table.rows) for k in ("TP", "FP", "TN", "FN")}
        repeats = f" (mean of {table.n_repeats} repeats)" if table.n_repeats > 1 else ""
        info = (
            f"{len(table.rows)} infants, out-of-fold probabilities{repeats}; threshold "
            f"{table.threshold:.2f}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
        )
        if table.cohort_problem:
            info += f"<br><b>{table.cohort_problem}</b>"
        self.run_info.setText(info)  # fmt: skip
        self._update_explain_state()
        self.run_opened.emit(str(self.run_dir))
        if self.proxy.rowCount():
            self.select_row(0)
        if self.explanations is None and table.has_models and not self.explainer.is_running():
            self.compute_explanations()  # the overlay needs them; the cache makes it once

    # --- infants --------------------------------------------------------------------
    def select_row(self, proxy_row: int) -> None:
        index = self.proxy.index(proxy_row, 0)
        self.table.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.ClearAndSelect | QItemSelectionModel.Rows
        )
        self.table.scrollTo(index)

    def select_patient(self, patient_id: str) -> None:
        for r in range(self.proxy.rowCount()):
            if self.proxy.index(r, 0).data(Qt.UserRole) == patient_id:
                self.select_row(r)
                return

    def step_infant(self, step: int) -> None:
        n = self.proxy.rowCount()
        if n:
            current = self.table.currentIndex().row()
            self.select_row(min(max(current + step, 0), n - 1))

    def visible_order(self) -> list[str]:
        return [self.proxy.index(r, 0).data(Qt.UserRole) for r in range(self.proxy.rowCount())]

    def _on_row(self, index) -> None:
        if not index.isValid() or self.table_data is None:
            return
        self.patient_id = index.data(Qt.UserRole)
        self.image_index = 0
        self._show_image()

    def step_image(self, step: int) -> None:
        row = self._row()
        if row is not None and row.images:
            self.image_index = (self.image_index + step) % len(row.images)
            self._show_image()

    def _row(self):
        if self.table_data is None or self.patient_id is None:
            return None
        return self.table_data.row(self.patient_id)

    def current_image(self) -> Path | None:
        row = self._row()
        return row.images[self.image_index] if row is not None and row.images else None

    def _show_image(self) -> None:
        row = self._row()
        if row is None:
            return
        n = len(row.images)
        self.image_label.setText(f"image {self.image_index + 1} of {n}" if n else "no image")
        for b in (self.prev_image, self.next_image):
            b.setEnabled(n > 1)
        self._update_caption()
        path = self.current_image()
        self.pixels_for = None
        if path is None:
            self.viewer.set_image(None)
            self.details.setText("The run's cohort table is not on this machine.")
            return
        self._load_token += 1
        token = self._load_token
        self.tasks.submit(
            _load_pixels, path,
            on_done=lambda px, t=token, p=path: self._on_pixels(t, p, px),
            on_error=lambda msg, t=token: self._on_pixels_failed(t, msg),
        )  # fmt: skip
        self._show_details(path)

    def _on_pixels(self, token: int, path: Path, pixels: np.ndarray) -> None:
        if token != self._load_token:
            return  # the user has moved on
        self.viewer.set_image(pixels)
        self.pixels_for = path
        self._show_overlay()

    def _on_pixels_failed(self, token: int, message: str) -> None:
        if token == self._load_token:
            self.viewer.set_image(None)
            self.caption.setText(
                self.caption.text() + f"<br><b>Cannot show the image:</b> {message}"
            )

    def is_showing(self, patient_id: str) -> bool:
        """The infant's image is on screen (tests and screenshots wait for this)."""
        return self.patient_id == patient_id and self.pixels_for == self.current_image()

    def _update_caption(self) -> None:
        row = self._row()
        truth = "positive" if row.label else "negative"
        fold = f"fold {row.fold}" if row.fold else "no fold"
        self.caption.setText(
            f"<b>Infant {row.patient_id}</b> · p = {row.prob:.3f} · true outcome {truth} · "
            f"<b>{row.outcome}</b> at threshold {self.table_data.threshold:.2f} · {fold}"
        )

    def _show_details(self, path: Path) -> None:
        from core.explain.review import dicom_details

        try:
            fields = dicom_details(path)
        except OSError as exc:
            self.details.setText(f"{path.name}: cannot read ({exc.strerror or exc})")
            return
        if fields is None:
            self.details.setText(f"{path.name} (not DICOM: no header)")
            return
        # two fields per line: the header must not squeeze the radiograph
        cells = [f"<td>{k}</td><td>&nbsp;<b>{v}</b>&nbsp;&nbsp;&nbsp;</td>" for k, v in fields]
        rows = "".join(f"<tr>{''.join(cells[i : i + 2])}</tr>" for i in range(0, len(cells), 2))
        self.details.setText(f"{path.name} · DICOM header, identifying fields left out"
                             f"<table>{rows}</table>")  # fmt: skip

    # --- overlay --------------------------------------------------------------------
    def scaling_key(self) -> str:
        return self.scaling.currentData()

    def _show_overlay(self) -> None:
        """The cached map of the current infant on the current image, or why there is none."""
        row, path = self._row(), self.current_image()
        self.viewer.set_overlay(None)
        self.overlay_state = "none"
        if row is None or self.viewer.pixels is None:
            return
        ex = self.explanations
        scaling = self.scaling_key()
        if ex is None and not self.table_data.has_models:
            self.scaling_note.setText("No Grad-CAM: this run folder has no fold models.")
            return
        if ex is None or row.patient_id not in ex.rows:
            note = (
                "No Grad-CAM yet: it is computed in the background (progress below)."
                if self.explainer.is_running()
                else "No Grad-CAM for this infant yet."
            )
            self.scaling_note.setText(note)  # fmt: skip
            return
        explained = Path(ex.rows[row.patient_id]["image"])
        if path is not None and explained != path:
            self.scaling_note.setText(
                f"No Grad-CAM for this image: the fold scored the infant's first readable "
                f"image ({explained.name})."
            )
            return
        cam, peak = ex.map(row.patient_id), ex.peak(row.patient_id)
        shared = ex.shared_peak if scaling == "shared" else None
        scaled = overlay.scaled_map(cam, peak, shared)
        shape, crop = self.viewer.pixels.shape, self.table_data.center_crop
        values = overlay.map_to_image(scaled, shape, crop, self.table_data.crop_for(path))
        text = overlay.scaling_text(scaling, shared, "run")
        fold = ex.rows[row.patient_id]["fold_id"]
        if overlay.is_empty(cam, peak):
            self.overlay_state = "empty"
            self.scaling_note.setText(f"<b>{overlay.EMPTY_TEXT}.</b> Model: fold {fold}.")
            return
        self.viewer.set_overlay(overlay.heat_rgba(values, 1.0))
        self.viewer.set_overlay_visible(self.overlay_check.isChecked())
        self.overlay_state = "shown"
        self.current_values = values
        self.scaling_note.setText(
            f"Out-of-fold Grad-CAM from fold {fold} (never trained on this infant). {text}."
        )

    def _on_overlay_toggled(self, on: bool) -> None:
        self.viewer.set_overlay_visible(on)

    # --- background explanation -----------------------------------------------------
    def compute_explanations(self) -> None:
        if self.run_dir is None or self.explainer.is_running():
            return
        self.explain_progress.setValue(0)
        self.explain_progress.setVisible(True)
        self.explain_button.setEnabled(False)
        self.explain_status.setText("Computing out-of-fold Grad-CAM (bpd explain)…")
        self.explainer.start(["explain", str(self.run_dir), "--all"])
        self._show_overlay()

    def _on_explain_progress(self, fraction: float) -> None:
        self.explain_progress.setValue(round(fraction * 100))

    def _on_explain_finished(self, ok: bool, message: str) -> None:
        from core.explain.batch import run_explanations

        self.explain_progress.setVisible(False)
        self.explain_button.setEnabled(True)
        if not ok:
            self.explain_status.setText("Grad-CAM failed.")
            show_error(self, "Grad-CAM failed", message)
            return
        self.explanations = run_explanations(self.run_dir) if self.run_dir else None
        self._update_explain_state()
        self._show_overlay()

    def _update_explain_state(self) -> None:
        ex = self.explanations
        can = self.table_data is not None and self.table_data.has_models
        self.explain_button.setEnabled(can and not self.explainer.is_running())
        self.explain_progress.setVisible(self.explainer.is_running())
        if ex is None and not can:
            self.explain_button.setText("Compute Grad-CAM for every infant")
            self.explain_status.setText(
                "This run folder has no fold models (model.pt), so no Grad-CAM can be computed."
            )
            return
        if ex is None:
            self.explain_button.setText("Compute Grad-CAM for every infant")
            self.explain_status.setText("")
            return
        empty = sum(int(r["empty"]) for r in ex.rows.values())
        self.explain_button.setText("Recompute Grad-CAM")
        self.explain_status.setText(
            f"Grad-CAM of {len(ex.rows)} infants cached in the run folder"
            + (f"; {empty} all-zero map(s)" if empty else "")
        )

    # --- export ---------------------------------------------------------------------
    def _choose_export(self) -> None:
        if self.viewer.pixels is None:
            return
        name = f"{self.patient_id or 'image'}_review.png"
        path, _ = QFileDialog.getSaveFileName(self, "Export view as PNG", name, "PNG (*.png)")
        if path:
            self.export_png(path)

    def export_png(self, path: str | Path) -> Path | None:
        """The radiograph at its own resolution as shown (window/level, overlay on/off,
        opacity, scaling), with colour bar and caption (core.explain.overlay)."""
        from core.atomic import atomic_write_bytes

        row, pixels = self._row(), self.viewer.windowed_pixels()
        if row is None or pixels is None:
            return None
        shown = self.overlay_state == "shown" and self.overlay_check.isChecked()
        fold = f"fold {row.fold} (out-of-fold)" if row.fold else None
        caption = overlay.Caption(infant=row.patient_id, prob=row.prob,
                                  threshold=self.table_data.threshold, label=row.label, fold=fold,
                                  image=self.current_image().name)  # fmt: skip
        if shown:
            shared = self.explanations.shared_peak if self.scaling_key() == "shared" else None
            scaling = overlay.scaling_text(self.scaling_key(), shared, "run")
        else:
            scaling = ("Grad-CAM overlay switched off" if self.overlay_state == "shown"
                       else "no Grad-CAM overlay for this image")  # fmt: skip
        image = overlay.render_overlay(
            pixels, self.current_values if shown else None, caption=caption, scaling=scaling,
            opacity=self.viewer.overlay_opacity() if shown else 0.0,
            empty=self.overlay_state == "empty",
        )  # fmt: skip
        return atomic_write_bytes(path, overlay.png_bytes(image))

    def shutdown(self) -> None:
        self.explainer.cancel()
