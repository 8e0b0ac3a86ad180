"""Review of a run whose cohort has clinical values and a DICOM: the clinical columns
appear and sort, and the DICOM's header is shown without identifying fields."""

from __future__ import annotations

from PySide6.QtCore import Qt

from tests.core.runfolder_factory import make_run_folder
from tests.core.test_review_table import _cohort


def test_clinical_columns_and_dicom_header(window, qtbot, tmp_path, data_dir):
    run = make_run_folder(tmp_path / "run", cohort_source=_cohort(tmp_path, data_dir))
    view = window.pages["review"]
    window.review_run(str(run))
    headers = [view.model.headerData(c, Qt.Horizontal) for c in range(view.model.columnCount())]
    for name in ("GA (weeks)", "Birth weight (g)", "IRDS", "Sex"):
        assert name in headers
    view.table.sortByColumn(headers.index("Birth weight (g)"), Qt.AscendingOrder)
    by_id = {r.patient_id: r for r in view.table_data.rows}
    weights = [by_id[p].birth_weight_g for p in view.visible_order()]
    assert weights == sorted(weights)

    view.select_patient("P002")  # its radiograph is a copy of a real CR DICOM
    qtbot.waitUntil(lambda: view.is_showing("P002"), timeout=20_000)
    details = view.details.text()
    assert "DICOM header, identifying fields left out" in details
    assert "CR" in details and "1024" in details and "MONOCHROME2" in details
    assert "16d7f894" not in details and "1901" not in details  # its PatientName/ID, date
    assert view.viewer.base.pixmap().width() == 1024
    assert "no fold models" in view.explain_status.text()
