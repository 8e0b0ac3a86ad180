"""A study: the paper's grid of initialisations x fine-tuning strategies on one cohort.

Every arm is an ordinary run folder (core.runs.folder) on identical folds and seeds,
kept in one study folder (core.study.folder) and run, or resumed, as a whole
(core.study.runner). docs/study.md describes the folder and the report.
"""
