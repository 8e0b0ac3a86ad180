"""Every CSV the project writes goes through here: spreadsheet-safe cells, read back exact.

Clinicians open predictions in a spreadsheet, which runs a cell beginning with
``= + - @`` (or a tab / carriage return) as a formula: a patient id such as
``=HYPERLINK(...)`` would execute. As OWASP recommends (CSV injection), such a text
cell is written with a leading single quote, which a spreadsheet shows as text.

Numbers are never changed: a float or int (a negative logit) is written as it is, and
so is text that is a plain number (``-1.23`` read back from a fold's CSV), because a
spreadsheet reads that as a number, not a formula. A text cell that itself begins with
a quote gets one more, so `read_csv` undoes the escape exactly: resumed runs compare
their predictions byte for byte and ids round-trip.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
ESCAPE = "'"
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|nan)", re.I)


def safe_cell(value: Any) -> Any:
    """The cell as written: floats at full precision (resume compares runs exactly),
    other numbers unchanged, text that a spreadsheet would run as a formula escaped."""
    if isinstance(value, float):
        return repr(float(value))  # float(): numpy 2 writes np.float64 as "np.float64(...)"
    if not isinstance(value, str) or not value:
        return value
    if value.startswith(ESCAPE):
        return ESCAPE + value
    if value.startswith(FORMULA_START) and not _PLAIN_NUMBER.fullmatch(value):
        return ESCAPE + value
    return value


def restore_cell(text: str) -> str:
    """Inverse of `safe_cell` for text read back from a CSV the project wrote."""
    return text[1:] if text.startswith(ESCAPE) else text


def csv_text(rows: Iterable[dict[str, Any]], fieldnames: Iterable[str]) -> str:
    buf = io.StringIO()
    fields = list(fieldnames)
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    # the csv module quotes only the line terminator's characters, so a lone CR in a
    # cell would split the row when read back: such a row is written fully quoted
    quoted = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writeheader()
    for row in rows:
        cells = {k: safe_cell(v) for k, v in row.items()}
        has_cr = any(isinstance(v, str) and "\r" in v for v in cells.values())
        (quoted if has_cr else writer).writerow(cells)
    return buf.getvalue()


def write_csv(path: str | Path, rows: Iterable[dict[str, Any]], fieldnames: Iterable[str]) -> Path:
    """Write atomically (core.atomic): a kill leaves the old file or the new one."""
    from core.atomic import atomic_write_text

    return atomic_write_text(path, csv_text(rows, fieldnames))


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """Rows of a CSV written by `write_csv`, every cell as it was before escaping."""
    with open(path, encoding="utf-8", newline="") as fh:
        return [
            {k: restore_cell(v) if isinstance(v, str) else v for k, v in row.items()}
            for row in csv.DictReader(fh)
        ]
