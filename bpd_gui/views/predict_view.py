"""Predict: new radiographs (images, DICOMs or one table) scored by a finished run or an
exported model, each with its Grad-CAM overlay; the results saved as CSV.

The work is `bpd predict MODEL --serve` in a child process (core's exact preprocessing
and threshold), started when the page shows a model and kept for every click, so the
model(s) load once (bpd_gui.widgets.predict_server); this page lists what each request
wrote: the per-image CSV and the overlay PNGs.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from bpd_gui.messages import show_error
from bpd_gui.widgets.image_viewer import ImageViewer
from bpd_gui.widgets.predict_server import PredictServer
from core import paths
from core.predict.crop_choice import WHOLE_UNLIKE_TRAINING

TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".xlsx")
COLUMNS = ("Image", "Infant", "Probability", "Class", "Problem")


def is_table(path: str | Path) -> bool:
    return Path(path).suffix.lower() in TABLE_SUFFIXES


class InputList(QListWidget):
    """The files to score; accepts drops of images, DICOMs or one table."""

    def __init__(self, on_files, parent=None):
        super().__init__(parent)
        self.setObjectName("predict_inputs")
        self.setAcceptDrops(True)
        self.setDragDropMode(QAbstractItemView.DropOnly)
        self._on_files = on_files

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        files = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if files:
            self._on_files(files)
            event.acceptProposedAction()


class PredictView(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.inputs: list[str] = []
        self.result_csv: Path | None = None
        self.rows: list[dict[str, str]] = []
        self.server = PredictServer(self)
        self.server.progress.connect(lambda f: self.progress.setValue(round(f * 100)))
        self.server.finished.connect(self._on_finished)
        self._build()
        self.refresh_models()

    def _build(self) -> None:
        self.model_combo = QComboBox()
        self.model_combo.setObjectName("predict_model")
        self.model_combo.setMinimumWidth(320)
        self.model_combo.currentIndexChanged.connect(lambda _i: self._model_changed())
        choose_model = QPushButton("Run or exported model folder…")
        choose_model.clicked.connect(self._choose_model)
        model_row = QHBoxLayout()
        model_row.addWidget(QLabel("Model:"))
        model_row.addWidget(self.model_combo, 1)
        model_row.addWidget(choose_model)
        self.model_note = QLabel(
            "A run uses its final model if it has one, else the mean of its fold models; "
            "the run's preprocessing and threshold are applied."
        )
        self.model_note.setWordWrap(True)

        self.input_list = InputList(self.add_files)
        hint = QLabel("Drop radiographs (PNG, JPEG, DICOM) or one table (CSV/XLSX) here.")
        add_images = QPushButton("Add images…")
        add_images.clicked.connect(self._choose_images)
        add_table = QPushButton("Add table…")
        add_table.clicked.connect(self._choose_table)
        clear = QPushButton("Clear")
        clear.clicked.connect(self.clear_inputs)
        self.cam_check = QCheckBox("Grad-CAM overlays")
        self.cam_check.setChecked(True)
        self.cam_scale = QComboBox()
        self.cam_scale.addItem("one scale for all these images", "shared")
        self.cam_scale.addItem("each image to its own maximum", "image")
        self.autobox_check = QCheckBox("Cut to the chest box (automatic)")
        self.autobox_check.setObjectName("predict_autobox")
        self.autobox_check.setEnabled(False)
        self.predict_button = QPushButton("Predict")
        self.predict_button.setObjectName("predict_button")
        self.predict_button.setDefault(True)
        self.predict_button.clicked.connect(self.start)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setVisible(False)
        self.status = QLabel("")
        self.status.setObjectName("predict_status")
        self.status.setWordWrap(True)
        buttons = QHBoxLayout()
        for w in (add_images, add_table, clear):
            buttons.addWidget(w)
        buttons.addStretch(1)
        options = QHBoxLayout()
        options.addWidget(self.cam_check)
        options.addWidget(self.cam_scale)
        options.addWidget(self.autobox_check)
        options.addStretch(1)
        options.addWidget(self.predict_button)

        self.results = QTableWidget(0, len(COLUMNS))
        self.results.setObjectName("predict_results")
        self.results.setHorizontalHeaderLabels(COLUMNS)
        self.results.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.results.setSelectionMode(QAbstractItemView.SingleSelection)
        self.results.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.results.verticalHeader().setVisible(False)
        self.results.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.results.horizontalHeader().setStretchLastSection(True)
        self.results.setSortingEnabled(True)
        self.results.currentCellChanged.connect(lambda r, *_: self._show_row(r))
        self.export_button = QPushButton("Export CSV…")
        self.export_button.setObjectName("predict_export")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self._choose_export)

        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addWidget(hint)
        lv.addWidget(self.input_list, 1)
        lv.addLayout(buttons)
        lv.addLayout(options)
        lv.addWidget(self.progress)
        lv.addWidget(self.status)
        lv.addWidget(self.results, 2)
        lv.addWidget(self.export_button, 0, Qt.AlignRight)

        self.viewer = ImageViewer()
        self.viewer.setMinimumSize(200, 150)
        self.viewer_note = QLabel("The overlay of the selected image appears here.")
        self.viewer_note.setWordWrap(True)
        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(0, 0, 0, 0)
        rv.addWidget(self.viewer, 1)
        rv.addWidget(self.viewer_note)

        split = QSplitter(Qt.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 1)
        split.setSizes([540, 700])  # the overlay gets the larger half
        layout = QVBoxLayout(self)
        layout.addLayout(model_row)
        layout.addWidget(self.model_note)
        layout.addWidget(split, 1)
        notice = QLabel("Research use only: predictions must not guide the care of an infant.")
        notice.setObjectName("notice")
        layout.addWidget(notice)

    # --- model ----------------------------------------------------------------------
    def refresh_models(self) -> None:
        from core.explain.review import reviewable_runs

        current = self.model_combo.currentData()
        self.model_combo.blockSignals(True)  # refilling is no change of model
        self.model_combo.clear()
        for path in reviewable_runs(paths.runs_dir()):
            self.model_combo.addItem(path.name, str(path))
        if current and self.model_combo.findData(current) < 0:
            self.model_combo.addItem(Path(current).name, current)
        if current:
            self.model_combo.setCurrentIndex(self.model_combo.findData(current))
        self.model_combo.blockSignals(False)
        self._model_changed()

    def _model_changed(self) -> None:
        """Another model: its own child. Started ahead of the first click while the page
        is on screen (imports and model loading happen before the user asks)."""
        model = self.model_combo.currentData()
        self._update_autobox(model)
        if model != self.server.model:
            if self.server.is_busy():  # its answer will not come: the page is free again
                self.progress.setVisible(False)
                self.predict_button.setEnabled(True)
                self.status.setText("Prediction stopped: another model was chosen.")
            self.server.stop()
        if model and self.isVisible():
            self.server.start(model)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._model_changed()

    def _update_autobox(self, model: str | None) -> None:
        """The automatic chest box only for a model trained on crop boxes (its card or
        run config says so; read as JSON, no torch), as `bpd predict --autobox`."""
        from core.cohort.crop_policy import method_text, trained_on_crops
        from core.predict.crop_choice import model_crop_policy

        policy = model_crop_policy(model) if model else {}
        cropped = trained_on_crops(policy)
        self.autobox_check.setEnabled(cropped)
        if not cropped:
            self.autobox_check.setChecked(False)
        self.autobox_check.setToolTip(
            (f"This model was trained on {method_text(policy)}. " if model else "")
            + "Cut each image without a crop box to the automatic chest box (bpd predict "
            "--autobox) before the model sees it: consistent only with a model trained on "
            "automatic boxes; only for models trained on crop boxes (docs/method.md, 'Crops')."
        )

    def set_model(self, folder: str | Path) -> None:
        folder = str(folder)
        if self.model_combo.findData(folder) < 0:
            self.model_combo.addItem(Path(folder).name, folder)
        self.model_combo.setCurrentIndex(self.model_combo.findData(folder))

    def _choose_model(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Run folder or exported model", str(paths.runs_dir())
        )
        if folder:
            self.set_model(folder)

    # --- inputs ---------------------------------------------------------------------
    def add_files(self, files: list[str]) -> None:
        tables = [f for f in files if is_table(f)]
        if tables and (len(files) > 1 or self.inputs):
            show_error(self, "One table or images", "Predict takes one table on its own, or "
                       "image files; not both. Clear the list first.")  # fmt: skip
            return
        for f in files:
            if f not in self.inputs:
                self.inputs.append(f)
                self.input_list.addItem(Path(f).name)
                self.input_list.item(self.input_list.count() - 1).setToolTip(f)

    def clear_inputs(self) -> None:
        self.inputs.clear()
        self.input_list.clear()

    def _choose_images(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Radiographs", "", "Images and DICOM (*)")
        if files:
            self.add_files(files)

    def _choose_table(self) -> None:
        from bpd_gui.views.cohort_view import TABLE_FILTER

        path, _ = QFileDialog.getOpenFileName(self, "Table of new infants", "", TABLE_FILTER)
        if path:
            self.add_files([path])

    # --- running --------------------------------------------------------------------
    def start(self) -> None:
        model = self.model_combo.currentData()
        if not model:
            show_error(self, "No model", "Choose a finished run or an exported model first.")
            return
        if not self.inputs:
            show_error(self, "Nothing to predict", "Add radiographs or a table first.")
            return
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        out_dir = paths.studio_home() / "predictions" / f"{stamp}-{Path(model).name}"
        out_dir.mkdir(parents=True, exist_ok=True)
        self.result_csv = out_dir / "new-predictions.csv"
        request = {"inputs": list(self.inputs), "out": str(self.result_csv), "cam": None}
        if self.cam_check.isChecked():
            request.update(cam=str(out_dir / "cam"), cam_scale=self.cam_scale.currentData())
        if self.autobox_check.isEnabled() and self.autobox_check.isChecked():
            request["autobox"] = True
        self.results.setRowCount(0)
        self.rows = []
        self.export_button.setEnabled(False)
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.predict_button.setEnabled(False)
        self.status.setText(f"Predicting {len(self.inputs)} input(s) with {Path(model).name}…")
        self.server.submit(model, request)  # "done" also for a partial result (exit 3)

    def is_running(self) -> bool:
        """A prediction is in flight (the idle child does not count)."""
        return self.server.is_busy()

    def _on_finished(self, ok: bool, message: str) -> None:
        from core.csv_cells import read_csv

        self.progress.setVisible(False)
        self.predict_button.setEnabled(True)
        if not ok:
            self.status.setText("Prediction failed.")
            show_error(self, "Prediction failed", message)
            return
        self.rows = read_csv(self.result_csv)
        self._fill_results()
        done = sum(1 for r in self.rows if r.get("prob"))
        problems = len(self.rows) - done
        folder = self.result_csv.parent
        text = f"{done} image(s) predicted; saved in predictions/{folder.name}"
        self.status.setToolTip(str(folder))  # the full path: too long for the line
        if problems:
            text += f"; {problems} could not be predicted (see Problem)"
        whole = sum(1 for r in self.rows if r.get("crop") == WHOLE_UNLIKE_TRAINING)
        if whole:  # bpd predict's warning, as its CSV's `crop` cells say it
            text += (f"; {whole} scored whole though the model was trained on crop boxes "
                     "(give the images' boxes, or cut them to the chest box)")  # fmt: skip
        self.status.setText(text)
        self.export_button.setEnabled(True)
        if self.results.rowCount():
            self.results.selectRow(0)
            self._show_row(0)

    def _fill_results(self) -> None:
        self.results.setSortingEnabled(False)
        self.results.setRowCount(len(self.rows))
        for i, row in enumerate(self.rows):
            prob = row.get("prob") or ""
            cls = row.get("predicted_class") or ""
            values = (
                Path(row.get("image") or "").name,
                row.get("patient_id") or "",
                f"{float(prob):.3f}" if prob else "",
                ("positive" if cls == "1" else "negative") if cls else "",
                row.get("problem") or "",
            )
            for j, value in enumerate(values):
                item = QTableWidgetItem(value)
                if j == 2 and prob:
                    item.setData(Qt.EditRole, float(prob))
                    item.setData(Qt.DisplayRole, f"{float(prob):.3f}")
                if j == 3 and cls == "1":
                    item.setForeground(QColor("#c62828"))
                item.setData(Qt.UserRole, i)
                self.results.setItem(i, j, item)
        self.results.setSortingEnabled(True)
        # single images have no infant id: no empty column
        self.results.setColumnHidden(1, not any(r.get("patient_id") for r in self.rows))

    def _show_row(self, table_row: int) -> None:
        item = self.results.item(table_row, 0) if table_row >= 0 else None
        if item is None:
            return
        row = self.rows[item.data(Qt.UserRole)]
        png = row.get("cam_png")
        if png and Path(png).is_file():
            self.viewer.set_picture(QImage(png))
            self.viewer_note.setText(
                f"{Path(png).name}: as `bpd predict` wrote it (full resolution; "
                "wheel to zoom, drag to pan)."
            )
        elif row.get("problem"):
            self.viewer.set_picture(None)
            self.viewer_note.setText(f"Not predicted: {row['problem']}")
        else:
            self.viewer.set_picture(None)
            self.viewer_note.setText("No overlay (Grad-CAM overlays were off).")

    # --- export ---------------------------------------------------------------------
    def _choose_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save predictions", "new-predictions.csv",
                                              "CSV (*.csv)")  # fmt: skip
        if path:
            self.export_csv(path)

    def export_csv(self, path: str | Path) -> list[Path]:
        """Copy what `bpd predict` wrote: the per-image CSV, and for a table the
        per-patient CSV (and metrics) beside it, named after `path`."""
        if self.result_csv is None:
            return []
        dest = Path(path)
        written = []
        for src in sorted(self.result_csv.parent.glob(self.result_csv.stem + "*")):
            target = dest.with_name(dest.stem + src.name[len(self.result_csv.stem) :])
            shutil.copyfile(src, target)
            written.append(target)
        return written

    def shutdown(self) -> None:
        """The app closes: the child ends (killed if it is predicting)."""
        self.server.stop()
