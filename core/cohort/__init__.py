"""Cohort import: tables (CSV/XLSX), image decoding (DICOM/PNG/JPEG), validation, cache.

    table.read_table(path)                     -> DataFrame of text, index = data row
    mapping.guess_mapping / ColumnMapping / OutcomeMapping / outcome_value_counts
    source.CohortSource                        where a cohort is and how to read it
    loader.load_source(source)                 -> Cohort (table-level checks, no decoding)
    loader.load_cohort(table, ...)             the same from keywords or a DataFrame
    prepare.prepare_images(cohort, cfg, ...)   -> PreparedCohort (decoded through the cache)
    images.read_image(path)                    -> DecodedImage (format from content)
    preprocess.PreprocessConfig / preprocess / to_model_input
    cache.ImageCache(root)                     pixels and content hashes only

Row numbers everywhere are 1-based data rows (1 = first row under the header).
"""
