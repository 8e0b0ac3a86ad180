"""Cohort page: open a table and an images folder, map columns, see the validation result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QFileSystemWatcher, Qt, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from bpd_gui.cohort_session import CohortSession, CohortSource
from bpd_gui.messages import show_error
from bpd_gui.widgets.patient_detail import PatientDetail
from bpd_gui.widgets.patient_list import PatientList, box_marks, hash_images
from bpd_gui.widgets.problem_list import ProblemList

TABLE_SUFFIXES = {".csv", ".tsv", ".txt", ".xlsx", ".xls"}
TABLE_FILTER = "Tables (*.csv *.tsv *.txt *.xlsx);;All files (*)"


class CohortView(QWidget):
    mapping_requested = Signal()  # emitted before the mapping dialog opens (tests hook in)

    def __init__(self, session: CohortSession, parent=None):
        super().__init__(parent)
        self.session = session
        self.setAcceptDrops(True)
        self.mapping_dialog = None
        self._fresh_mapping = False  # another sheet was read: its columns are new

        self.open_button = QPushButton("Open table…")
        self.open_button.clicked.connect(self.choose_table)
        self.images_button = QPushButton("Images folder…")
        self.images_button.clicked.connect(self.choose_images_folder)
        self.mapping_button = QPushButton("Column mapping…")
        self.mapping_button.clicked.connect(lambda: self.edit_mapping())
        self.check_button = QPushButton("Check all images")
        self.check_button.setToolTip(
            "Decode every image once (off the GUI thread) to find unreadable files now, "
            "not during training. Decoded images are cached for training."
        )
        self.check_button.clicked.connect(self.check_images)
        self.crop_button = QPushButton("Crop boxes…")
        self.crop_button.setToolTip(
            "Draw or accept each image's chest box and rotation (keys: N next, A accept, "
            "C copy the previous box). Saved beside the table as TABLE.crops.csv; training "
            "uses the boxes a person drew or accepted (docs/method.md, 'Crops')."
        )
        self.crop_button.clicked.connect(self.open_crop_tool)
        buttons = QHBoxLayout()
        for b in (self.open_button, self.images_button, self.mapping_button, self.check_button):
            buttons.addWidget(b)
        buttons.addWidget(self.crop_button)
        buttons.addStretch(1)

        self.source_label = QLabel("Drop a table (CSV/XLSX) or an images folder here.")
        self.source_label.setObjectName("source_label")
        self.source_label.setWordWrap(True)
        self.summary_label = QLabel()
        self.summary_label.setObjectName("cohort_summary")
        self.summary_label.setWordWrap(True)
        self.balance = QProgressBar()
        self.balance.setObjectName("balance")
        self.balance.setFormat("%v of %m positive")
        self.balance.setMinimumWidth(220)
        self.balance.setToolTip("Outcome balance of the usable patients")
        self.busy = QProgressBar()
        self.busy.setMinimumWidth(300)
        self.busy.hide()
        summary_row = QHBoxLayout()
        summary_row.addWidget(self.summary_label, 1)
        summary_row.addWidget(self.busy)
        summary_row.addWidget(self.balance)

        self.problems = ProblemList()
        self.problems.patient_selected.connect(self.select_patient)
        self.problem_text = QLabel()  # the selected problem in full, whatever its length
        self.problem_text.setObjectName("problem_text")
        self.problem_text.setWordWrap(True)
        self.problem_text.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.problem_text.hide()
        self.problems.message_selected.connect(self._show_problem_text)
        problems_pane = QWidget()
        problems_layout = QVBoxLayout(problems_pane)
        problems_layout.setContentsMargins(0, 0, 0, 0)
        problems_layout.addWidget(self.problems, 1)
        problems_layout.addWidget(self.problem_text)
        self.patients = PatientList(session.tasks)
        self.detail = PatientDetail(session.tasks)
        self.patients.patient_selected.connect(self._show_detail)
        # the Box column follows the sidecar, whoever writes it (the crop tool, `bpd
        # cohort autobox`): its folder is watched, since a write replaces the file
        self._shas: dict[Path, str] = {}  # image file -> content hash (the sidecar's key)
        self._boxes_generation = 0
        self._sidecar_stamp: tuple[int, int] | None = None
        self.box_watcher = QFileSystemWatcher(self)
        self.box_watcher.directoryChanged.connect(lambda _d: self._sidecar_maybe_changed())
        right = QSplitter(Qt.Vertical)
        right.addWidget(self.patients)
        right.addWidget(self.detail)
        right.setSizes([400, 260])
        split = QSplitter(Qt.Horizontal)
        split.addWidget(problems_pane)
        split.addWidget(right)
        split.setSizes([420, 640])

        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(self.source_label)
        layout.addLayout(summary_row)
        layout.addWidget(split, 1)

        session.table_read.connect(self._on_table_read)
        session.validating.connect(lambda: self._set_busy("Checking the cohort…"))
        session.cohort_changed.connect(self.show_cohort)
        session.failed.connect(self._on_failed)
        self._update_buttons()

    # --- opening ------------------------------------------------------------------------
    def choose_table(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open cohort table", "", TABLE_FILTER)
        if path:
            self.open_table(path)

    def choose_images_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Images folder")
        if folder:
            self.session.set_images_root(folder)
            self._show_source()

    def open_table(self, path: str) -> None:
        if not Path(path).is_file():
            show_error(self, "Cannot open the table", f"{path} is not a file.")
            return
        self._set_busy(f"Reading {Path(path).name}…")
        self.session.read_table(path)

    def _on_table_read(self, path: str, frame: Any, for_mapping: bool) -> None:
        self._set_busy(None)
        if for_mapping:
            src = self.session.source
            fresh, self._fresh_mapping = self._fresh_mapping, False
            self.edit_mapping(fresh=fresh or src is None or src.table != path)

    def edit_mapping(self, fresh: bool = False) -> None:
        from bpd_gui.dialogs.mapping_dialog import MappingDialog

        if self.session.frame is None:
            if self.session.source is not None:
                src = self.session.source
                self.session.read_table(src.table, for_mapping=True, sheet=src.sheet)
            return
        mapping = outcome = pattern = None
        if self.session.source is not None and not fresh:
            from core.cohort.mapping import ColumnMapping, OutcomeMapping

            mapping = ColumnMapping.from_json(self.session.source.mapping)
            outcome = OutcomeMapping.from_json(self.session.source.outcome)
            pattern = self.session.source.image_pattern
        dialog = MappingDialog(self.session.frame, mapping, outcome, self, image_pattern=pattern)
        dialog.accepted.connect(lambda d=dialog: self._apply_mapping(d))
        dialog.sheet_chosen.connect(lambda name, d=dialog: self._read_sheet(d, name))
        self.mapping_dialog = dialog
        self.mapping_requested.emit()
        dialog.open()

    def _read_sheet(self, dialog: Any, sheet: str) -> None:
        """Another sheet of the workbook: read it, then map its columns afresh."""
        dialog.reject()
        self._fresh_mapping = True
        self._set_busy(f"Reading sheet '{sheet}'…")
        self.session.read_table(str(self.session.table_path), for_mapping=True, sheet=sheet)

    def _apply_mapping(self, dialog: Any) -> None:
        self.session.apply(
            CohortSource(
                table=str(self.session.table_path),
                images_root=self.session.images_root,
                mapping=dialog.column_mapping().to_json(),
                outcome=dialog.outcome_mapping().to_json(),
                image_pattern=dialog.image_pattern(),
                sheet=dialog.sheet(),
            )
        )
        self._show_source()

    # --- results ------------------------------------------------------------------------
    def show_cohort(self, cohort: Any) -> None:
        self._set_busy(None)
        self._show_source()
        n_pos, n = cohort.n_positive, cohort.n_patients
        self.summary_label.setText(
            f"<b>{n}</b> patients · <b>{cohort.n_images}</b> images · "
            f"<b>{n_pos}</b> positive / <b>{cohort.n_negative}</b> negative · "
            f"{len(cohort.exclusions)} excluded · {_n(len(cohort.errors), 'error')} · "
            f"{_n(len(cohort.warnings), 'warning')}"
            + ("" if cohort.is_usable() else " · <span style='color:#b00020'>not enough "
               "patients of both outcomes to train</span>")
        )  # fmt: skip
        self.balance.setMaximum(max(n, 1))
        self.balance.setValue(n_pos)
        self.problems.show_problems(cohort.problems)
        self.patients.show_cohort(cohort)
        self._watch_boxes(cohort)
        self._update_buttons()

    def select_patient(self, patient_id: str) -> None:
        if not self.patients.select_patient(patient_id) and self.session.cohort is not None:
            self._show_detail(patient_id)

    def _show_problem_text(self, text: str) -> None:
        self.problem_text.setText(text)
        self.problem_text.setVisible(bool(text))

    def _show_detail(self, patient_id: str) -> None:
        if self.session.cohort is not None:
            self.detail.show_patient(self.session.cohort, patient_id)

    def check_images(self) -> None:
        from core.cohort.prepare import prepare_images
        from core.cohort.preprocess import PreprocessConfig

        cohort = self.session.cohort
        if cohort is None:
            return
        self.check_button.setEnabled(False)
        self._set_busy("Decoding images…", maximum=cohort.n_images)
        self.session.tasks.submit(
            prepare_images,
            cohort,
            PreprocessConfig(),
            on_done=self._on_images_checked,
            on_error=lambda msg: self._on_failed("Images could not be checked", msg),
            on_progress=lambda done, total: self.busy.setValue(done),
        )

    def _on_images_checked(self, prepared: Any) -> None:
        self.check_button.setEnabled(True)
        self.session.update_cohort(prepared.cohort)

    # --- helpers ------------------------------------------------------------------------
    def _show_source(self) -> None:
        table = self.session.table_path or "no table"
        root = self.session.images_root or "the table's folder"
        src = self.session.source
        if src is not None and src.sheet:
            table = f"{table} (sheet '{src.sheet}')"
        if src is not None and src.image_pattern:
            root = f"{root}, found by the pattern {src.image_pattern}"
        self.source_label.setText(f"Table: {table}\nImages: {root}")

    def _set_busy(self, text: str | None, maximum: int = 0) -> None:
        if text is None:
            self.busy.hide()
        else:
            self.busy.setRange(0, maximum)
            self.busy.setValue(0)
            self.busy.setFormat(text + (" %v/%m" if maximum else ""))
            self.busy.setTextVisible(True)
            self.busy.show()
        self._update_buttons()

    def _update_buttons(self) -> None:
        has_table = self.session.table_path is not None
        self.mapping_button.setEnabled(has_table)
        self.check_button.setEnabled(self.session.cohort is not None)
        self.crop_button.setEnabled(self.session.cohort is not None)

    def open_crop_tool(self) -> None:
        """The crop tool (bpd_gui.dialogs.crop_dialog) on every image of the cohort."""
        from bpd_gui.dialogs.crop_dialog import CropDialog
        from core.cohort.crops import sidecar_path

        cohort = self.session.cohort
        if cohort is None:
            return
        root = Path(cohort.images_root)
        images = [(str(r.path.relative_to(root)) if r.path.is_relative_to(root) else str(r.path),
                   r.path) for p in cohort.patients for r in p.images]  # fmt: skip
        self.crop_dialog = CropDialog(images, sidecar_path(cohort.table_path), self)
        self.crop_dialog.finished.connect(lambda _r: self.refresh_box_marks())
        self.crop_dialog.show()

    # --- the Box column -----------------------------------------------------------------
    def _sidecar(self) -> Path | None:
        from core.cohort.crops import sidecar_path

        cohort = self.session.cohort
        return sidecar_path(cohort.table_path) if cohort is not None else None

    def _watch_boxes(self, cohort: Any) -> None:
        """Hash the cohort's images off the GUI thread (once per file), then mark them."""
        self._boxes_generation += 1
        folders = self.box_watcher.directories()
        if folders:
            self.box_watcher.removePaths(folders)
        sidecar = self._sidecar()
        if sidecar is not None and sidecar.parent.is_dir():
            self.box_watcher.addPath(str(sidecar.parent))
        paths = [r.path for p in cohort.patients for r in p.images]
        generation = self._boxes_generation
        self.session.tasks.submit(
            hash_images,
            paths,
            dict(self._shas),
            on_done=lambda shas, g=generation: self._on_hashed(shas, g),
            on_error=lambda _msg: None,  # no marks: the column stays empty
        )

    def _on_hashed(self, shas: dict[Path, str], generation: int) -> None:
        self._shas.update(shas)
        if generation == self._boxes_generation:
            self.refresh_box_marks()

    def _sidecar_maybe_changed(self) -> None:
        sidecar = self._sidecar()
        stamp = None
        if sidecar is not None and sidecar.is_file():
            st = sidecar.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._sidecar_stamp:
            self.refresh_box_marks()

    def refresh_box_marks(self) -> None:
        """The Box column from the sidecar as it is now."""
        from core.cohort.crops import CropTable, read_sidecar
        from core.errors import InputError

        cohort, sidecar = self.session.cohort, self._sidecar()
        if cohort is None or sidecar is None:
            return
        patients = [(p.patient_id, [r.path for r in p.images]) for p in cohort.patients]
        if not all(path in self._shas for _, paths in patients for path in paths):
            return  # still hashing; marked when the hashes arrive
        try:
            st = sidecar.stat() if sidecar.is_file() else None
            table = read_sidecar(sidecar) if st is not None else CropTable()
        except InputError as exc:  # a bad row: say so in the column, keep the page usable
            marks = {pid: ("?", f"crop table unreadable: {exc}") for pid, _ in patients}
            self.patients.show_box_marks(marks)
            return
        self._sidecar_stamp = (st.st_mtime_ns, st.st_size) if st is not None else None
        self.patients.show_box_marks(box_marks(patients, self._shas, table))

    def _on_failed(self, title: str, message: str) -> None:
        self._set_busy(None)
        self.check_button.setEnabled(self.session.cohort is not None)
        show_error(self, title, message)

    # --- drag and drop ------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        if self._dropped_path(event) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        path = self._dropped_path(event)
        if path is None:
            return
        event.acceptProposedAction()
        if path.is_dir():
            self.session.set_images_root(str(path))
            self._show_source()
        else:
            self.open_table(str(path))

    @staticmethod
    def _dropped_path(event) -> Path | None:
        urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
        if not urls or not urls[0].isLocalFile():
            return None
        path = Path(urls[0].toLocalFile())
        if path.is_dir() or path.suffix.lower() in TABLE_SUFFIXES:
            return path
        return None


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
