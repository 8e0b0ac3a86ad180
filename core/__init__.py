"""BPD Studio core: headless cohort import, training, evaluation and explanation.

Never imports Qt; the desktop app (`bpd_gui`) is a thin client of this package.
"""

__version__ = "0.1.0"
