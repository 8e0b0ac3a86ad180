"""The numbers training, runs and reports share: a binary classifier's metrics, the
threshold rules (fixed, Youden's J on inner folds) and the clinical baselines.

Below core.training in the layers (pyproject.toml, import-linter): the training loop
scores its folds with these, and the reports above read the same definitions.
"""
