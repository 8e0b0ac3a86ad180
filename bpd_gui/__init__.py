"""BPD Studio desktop app: a thin PySide6 client of `core`.

It reads tables and thumbnails through `core`, and runs every training job as a child
process whose event stream (events.jsonl) it follows. It never trains in-process.
"""

from core import __version__

__all__ = ["__version__"]
