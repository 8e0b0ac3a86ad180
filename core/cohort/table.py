"""Read a cohort table (CSV with any delimiter and common encodings, or XLSX) as text.

Every cell comes back as a stripped string ("" when empty) so that ids like "007" and
grades like "2" keep what the site wrote. The index holds the 1-based *data row*
(1 = the first row under the header); messages quote it as "data row N", which is
spreadsheet line N + 1.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd

from core.errors import InputError

DELIMITERS = (",", ";", "\t", "|")
XLSX_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # legacy .xls


def read_table(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise InputError("table not found", file=path) from exc
    except OSError as exc:
        raise InputError(f"cannot read table ({exc.strerror})", file=path) from exc
    if data.startswith(XLSX_MAGIC):
        df = _read_xlsx(data, path)
    elif data.startswith(OLE_MAGIC):
        raise InputError("legacy .xls workbooks are not supported; save as .xlsx or CSV", file=path)
    else:
        df = _read_csv(data, path)
    return _tidy(df, path)


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM, else Windows-1252 / Latin-1."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")  # German Excel's default; a superset of Latin-1 text
    except UnicodeDecodeError:
        return data.decode("latin-1")


def sniff_delimiter(text: str) -> str:
    """The delimiter that splits the first lines into the same, largest number of fields."""
    lines = [ln for ln in text.splitlines()[:50] if ln.strip()]
    if not lines:
        return ","
    best, best_score = ",", (0, 0)
    for delim in DELIMITERS:
        widths = [len(r) for r in csv.reader(lines, delimiter=delim)]
        consistent = sum(w == widths[0] for w in widths)
        score = (widths[0] if widths[0] > 1 else 0, consistent)
        if score > best_score:
            best, best_score = delim, score
    if best_score[0] == 0:
        try:
            return (
                csv.Sniffer().sniff("\n".join(lines[:20]), delimiters="".join(DELIMITERS)).delimiter
            )
        except csv.Error:
            return ","
    return best


def _read_csv(data: bytes, path: Path) -> pd.DataFrame:
    text = decode_text(data)
    if not text.strip():
        raise InputError("table is empty", file=path)
    if "\x00" in text:
        raise InputError("not a text table (binary content); use CSV or XLSX", file=path)
    try:
        return pd.read_csv(
            io.StringIO(text),
            sep=sniff_delimiter(text),
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,
        )
    except (pd.errors.ParserError, csv.Error, ValueError) as exc:
        raise InputError(f"cannot parse CSV ({exc})", file=path) from exc


def _read_xlsx(data: bytes, path: Path) -> pd.DataFrame:
    try:
        df = pd.read_excel(io.BytesIO(data), sheet_name=0, dtype=str, engine="openpyxl")
    except Exception as exc:  # openpyxl raises many types for damaged workbooks
        raise InputError(f"cannot read XLSX workbook ({exc})", file=path) from exc
    return df.fillna("")


def _tidy(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    if df.shape[1] == 0:
        raise InputError("table has no columns", file=path)
    df.columns = [str(c).strip().lstrip("\ufeff") for c in df.columns]
    df = df.fillna("").astype(str).apply(lambda col: col.str.strip())
    df.index = pd.RangeIndex(1, len(df) + 1, name="row")
    # Blank lines and ";;;" lines are layout, not data; row numbers stay those of the file.
    df = df[(df != "").any(axis=1)]
    if df.empty:
        raise InputError("table has a header but no data rows", file=path)
    return df
