"""Metrics, statistics (CIs, paired tests), clinical baselines, reports."""
