"""Answering with a spreadsheet: the format a caller asked for, who may take one out, and the
response that carries it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from flask import Response

from attendance.domain.auth import Role
from attendance.domain.errors import ValidationFailed
from attendance.domain.exports import XLSX_MIMETYPE, to_csv, to_xlsx
from attendance.web.auth import Forbidden, current_principal

FORMATS = ("json", "csv", "xlsx")


def requested_format(args: Mapping[str, str], what: str) -> str:
    """``format`` (json by default); a spreadsheet leaves the system, so it needs teacher."""
    fmt = args.get("format", "json")
    if fmt not in FORMATS:
        raise ValidationFailed("format must be json, csv or xlsx", code="invalid_format")
    if fmt != "json" and current_principal().role < Role.teacher:
        raise Forbidden(
            f"the viewer role may read {what} but not export it; exporting needs teacher"
        )
    return fmt


def spreadsheet(
    rows: Iterable[Mapping[str, object]], fields: list[str], fmt: str, stem: str, title: str
) -> Response:
    """``rows`` as a CSV or XLSX attachment named ``stem`` (made safe for a file name)."""
    name = "".join(c if c.isalnum() or c in "._-" else "_" for c in stem)
    if fmt == "csv":
        # UTF-8 with a byte-order mark, so that spreadsheets read accented names right.
        body, mimetype = ("\ufeff" + to_csv(rows, fields)).encode("utf-8"), "text/csv"
    else:
        body, mimetype = to_xlsx(rows, fields, title=title), XLSX_MIMETYPE
    return Response(
        body,
        mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"'},
    )
