"""Reports and run comparisons: statistics (CIs, paired tests), HTML, plots. The metrics,
thresholds and clinical baselines they show are core.scoring's."""
