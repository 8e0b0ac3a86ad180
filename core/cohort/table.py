"""Read a cohort table (CSV with any delimiter and common encodings, or XLSX) as text.

Every cell comes back as a stripped string ("" when empty) so that ids like "007" and
grades like "2" keep what the site wrote. The index holds the 1-based *data row*
(1 = the first row under the header); messages quote it as "data row N", which is
spreadsheet line N + 1.

What was read is kept in ``df.attrs``: "sheet" (the XLSX sheet, None for CSV), "sheets"
(every sheet of the workbook) and "duplicate_headers" ({header: [column labels]}: a
repeated header is never silently renamed to "diagnosis.1"; the loader reports it).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd

from core.cohort.mapping import guess_mapping
from core.errors import InputError

DELIMITERS = (",", ";", "\t", "|")
XLSX_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # legacy .xls


def read_table(path: str | Path, sheet: str | int | None = None) -> pd.DataFrame:
    """`sheet`: an XLSX sheet's name or position (1 = first); by default the one sheet
    that looks like cohort data (InputError listing them when several do)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise InputError("table not found", file=path) from exc
    except OSError as exc:
        raise InputError(f"cannot read table ({exc.strerror})", file=path) from exc
    if data.startswith(XLSX_MAGIC):
        return _read_xlsx(data, path, sheet)
    if data.startswith(OLE_MAGIC):
        raise InputError("legacy .xls workbooks are not supported; save as .xlsx or CSV", file=path)
    if sheet is not None:
        raise InputError("--sheet applies to XLSX workbooks; this table is a text file", file=path)
    df = _tidy(_read_csv(data, path), path)
    df.attrs.update(sheet=None, sheets=[])
    return df


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
            header=None,  # the header row is read by _tidy: repeated names stay visible
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,
        )
    except (pd.errors.ParserError, csv.Error, ValueError) as exc:
        raise InputError(f"cannot parse CSV ({exc})", file=path) from exc


def _read_xlsx(data: bytes, path: Path, sheet: str | int | None) -> pd.DataFrame:
    try:
        book = pd.read_excel(
            io.BytesIO(data), sheet_name=None, header=None, dtype=str, engine="openpyxl"
        )
    except Exception as exc:  # openpyxl raises many types for damaged workbooks
        raise InputError(f"cannot read XLSX workbook ({exc})", file=path) from exc
    names = [str(n) for n in book]
    if not names:
        raise InputError("workbook has no sheets", file=path)
    frames = dict(zip(names, book.values(), strict=True))
    name = _chosen_sheet(names, sheet, path) if sheet is not None else _data_sheet(frames, path)
    df = _tidy(frames[name], path, where=f"sheet '{name}'" if len(names) > 1 else "")
    df.attrs.update(sheet=name, sheets=names)
    return df


def _chosen_sheet(names: list[str], sheet: str | int, path: Path) -> str:
    """--sheet NAME, or its position counted from 1."""
    text = str(sheet).strip()
    if text in names:
        return text
    folded = {n.casefold(): n for n in names}
    if text.casefold() in folded:
        return folded[text.casefold()]
    if text.isdigit() and 1 <= int(text) <= len(names):
        return names[int(text) - 1]
    raise InputError(f"no sheet '{text}' in the workbook; its sheets: {_listed(names)}", file=path)


def _data_sheet(frames: dict[str, pd.DataFrame], path: Path) -> str:
    """The one sheet that looks like cohort data; refuses to guess between several."""
    names = list(frames)
    if len(names) == 1:
        return names[0]
    with_rows, with_ids = [], []
    for name, raw in frames.items():
        try:
            df = _tidy(raw.copy(), path)
        except InputError:  # empty, or a header without rows: not data
            continue
        if df.shape[1] >= 2:
            with_rows.append(name)
            if guess_mapping(df.columns).patient_id:
                with_ids.append(name)
    candidates = with_ids or with_rows
    if len(candidates) > 1:
        others = f"; all its sheets: {_listed(names)}" if len(candidates) < len(names) else ""
        raise InputError(
            f"the workbook has {len(candidates)} sheets that look like cohort data "
            f"({_listed(candidates)}); choose one with --sheet NAME (or its position, "
            f"1 = first) or put all patients on one sheet{others}",
            file=path,
        )
    return candidates[0] if candidates else names[0]


def _listed(names: list[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def column_label(index: int) -> str:
    """0-based column index -> "column 3 (C)", as a spreadsheet shows it."""
    letters, n = "", index + 1
    while n:
        n, rem = divmod(n - 1, 26)
        letters = chr(ord("A") + rem) + letters
    return f"column {index + 1} ({letters})"


def _header(raw: pd.DataFrame) -> tuple[list[str], dict[str, list[str]]]:
    """Column names from the first row; a repeated name keeps its first column and the
    others are named "<name> [column N (X)]", reported in the returned duplicates."""
    first = ["" if pd.isna(v) else str(v) for v in raw.iloc[0].tolist()] if len(raw) else []
    names = [v.strip().lstrip("\ufeff").strip() or f"Unnamed: {i}" for i, v in enumerate(first)]
    positions: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        positions.setdefault(name, []).append(i)
    duplicates = {n: [column_label(i) for i in idx] for n, idx in positions.items() if len(idx) > 1}
    for name, idx in positions.items():
        for i in idx[1:]:
            names[i] = f"{name} [{column_label(i)}]"
    return names, duplicates


def _tidy(raw: pd.DataFrame, path: Path, where: str = "") -> pd.DataFrame:
    place = f"{where}: " if where else ""
    if raw.shape[1] == 0 or raw.shape[0] == 0:
        raise InputError(f"{place}table is empty (no header row)", file=path)
    names, duplicates = _header(raw)
    df = raw.iloc[1:].copy()
    df.columns = names
    df = df.fillna("").astype(str).apply(lambda col: col.str.strip())
    df.index = pd.RangeIndex(1, len(df) + 1, name="row")
    # Blank lines and ";;;" lines are layout, not data; row numbers stay those of the file.
    df = df[(df != "").any(axis=1)]
    if df.empty:
        raise InputError(f"{place}table has a header but no data rows", file=path)
    df.attrs["duplicate_headers"] = duplicates
    return df
