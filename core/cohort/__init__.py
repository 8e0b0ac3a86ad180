"""Cohort import: tables (CSV/XLSX), image decoding (DICOM/PNG/JPEG), validation, cache."""
