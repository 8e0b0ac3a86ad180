"""Cohort import: tables (CSV/XLSX), image decoding (DICOM/PNG/JPEG), validation, cache.

    table.read_table(path)                     -> DataFrame of text, index = data row
    mapping.guess_mapping / ColumnMapping / OutcomeMapping / outcome_value_counts
    loader.load_cohort(table, ...)             -> Cohort (table-level checks, no decoding)
    prepare.prepare_images(cohort, cfg, ...)   -> PreparedCohort (decoded through the cache)
    images.read_image(path)                    -> DecodedImage (format from content)
    preprocess.PreprocessConfig / preprocess / to_model_input
    cache.ImageCache(root)                     pixels and content hashes only

Row numbers everywhere are 1-based data rows (1 = first row under the header).
"""
