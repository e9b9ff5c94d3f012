"""Attendance over a date range: a student's history and rate, a class's absences; as JSON or
exported whole as CSV or XLSX."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, jsonify, request

from attendance.domain.api_shapes import ReportQuery
from attendance.domain.auth import Role
from attendance.domain.errors import ValidationFailed
from attendance.domain.reports import AbsenceRow, ClassAbsences, HistoryRow, StudentHistory
from attendance.domain.schemas import validate_identifier
from attendance.services import reports
from attendance.web.apidoc import SPREADSHEETS, Reply, operation
from attendance.web.audit import audit
from attendance.web.auth import Forbidden, allowed_classes, check_class, requires
from attendance.web.context import services
from attendance.web.exports import requested_format, spreadsheet
from attendance.web.forms import optional_date

bp = Blueprint("reports", __name__, url_prefix="/api/v1")

# Without from/to: the last DEFAULT_DAYS days, today included. A longer range than MAX_DAYS
# is refused: each report reads every register of the range.
DEFAULT_DAYS = 30
MAX_DAYS = 366
# Every field of a row, in the order the shapes declare them.
HISTORY_FIELDS = list(HistoryRow.model_fields)
ABSENCE_FIELDS = list(AbsenceRow.model_fields)


def _range() -> tuple[dt.date, dt.date]:
    date_to = optional_date(request.args, "to") or dt.date.today()
    date_from = optional_date(request.args, "from") or date_to - dt.timedelta(days=DEFAULT_DAYS - 1)
    if date_from > date_to:
        raise ValidationFailed("from must not be after to", code="invalid_range")
    if (date_to - date_from).days + 1 > MAX_DAYS:
        raise ValidationFailed(
            f"a report covers at most {MAX_DAYS} days; ask for a shorter range",
            code="invalid_range",
        )
    return date_from, date_to


def _exported(
    action: str,
    kind: str,
    subject: str,
    rows: list[dict],
    fields: list[str],
    fmt: str,
    date_from: dt.date,
    date_to: dt.date,
):
    """The report's rows as a spreadsheet; an export leaves the system, so it is audited."""
    audit(
        action,
        subject,
        date_from=date_from.isoformat(),
        date_to=date_to.isoformat(),
        format=fmt,
        rows=len(rows),
    )
    stem = f"{kind}-{subject}-{date_from.isoformat()}-to-{date_to.isoformat()}"
    return spreadsheet(rows, fields, fmt, stem, title=subject)


_SESSION = " A session is a register held: one with a mark, or signed off."
_REPORT_ERRORS = {
    400: f"An invalid id, date, range (from after to, or over {MAX_DAYS} days) or format.",
    403: "An export by a viewer, or a class the token may not see.",
}
_REPORT = "The report (format=csv or xlsx: an audited export, teacher and up)."


@bp.get("/students/<student_id>/attendance")
@requires(Role.viewer)
@operation(
    "studentAttendance",
    "A student's status in every session of their classes over the range, and their "
    "attendance rate." + _SESSION,
    query=ReportQuery,
    replies={200: Reply(_REPORT, StudentHistory, SPREADSHEETS)},
    errors={**_REPORT_ERRORS, 404: "No such student (student_not_found)."},
)
def student_history(student_id: str):
    validate_identifier(student_id, "student_id")
    date_from, date_to = _range()
    fmt = requested_format(request.args, "a student's attendance")
    allowed = allowed_classes()
    records = services().records
    if allowed is not None:
        student = records.get_student(student_id)
        if student is not None and not set(student.class_ids) & allowed:
            raise Forbidden(
                "this token may see only the students of its classes", code="class_forbidden"
            )
    history = reports.student_history(
        records, student_id, date_from, date_to, classes=None if allowed is None else set(allowed)
    )
    if fmt == "json":
        return jsonify(history.model_dump(mode="json"))
    rows = [row.model_dump(mode="json") for row in history.rows]
    return _exported(
        "export_student_attendance",
        "attendance",
        student_id,
        rows,
        HISTORY_FIELDS,
        fmt,
        date_from,
        date_to,
    )


@bp.get("/classes/<class_id>/absences")
@requires(Role.viewer)
@operation(
    "classAbsences",
    "Each student enrolled in the class with their absences over the range, most absent "
    "first." + _SESSION,
    query=ReportQuery,
    replies={200: Reply(_REPORT, ClassAbsences, SPREADSHEETS)},
    errors={**_REPORT_ERRORS, 404: "No student is enrolled in class_id (unknown_class)."},
)
def class_absences(class_id: str):
    validate_identifier(class_id, "class_id")
    check_class(class_id)
    date_from, date_to = _range()
    fmt = requested_format(request.args, "a class's absences")
    found = reports.class_absences(services().records, class_id, date_from, date_to)
    if fmt == "json":
        return jsonify(found.model_dump(mode="json"))
    rows = [
        {**row.model_dump(mode="json"), "absent_on": "; ".join(row.absent_on)} for row in found.rows
    ]
    return _exported(
        "export_absences", "absences", class_id, rows, ABSENCE_FIELDS, fmt, date_from, date_to
    )
