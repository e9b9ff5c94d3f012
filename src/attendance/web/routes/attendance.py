"""Attendance: the records filtered by class, date range and student; and a class's register
for one date and period, which a teacher reviews, corrects by hand and signs off."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from pydantic import ValidationError

from attendance.domain.api_shapes import (
    AttendanceList,
    AttendanceQuery,
    FinalizeRequest,
    MarkResult,
    RegisterQuery,
)
from attendance.domain.auth import Role
from attendance.domain.errors import ValidationFailed
from attendance.domain.exports import to_csv
from attendance.domain.schemas import (
    MarkRequest,
    Register,
    RegisterLock,
    validate_identifier,
    validate_period,
)
from attendance.services import register as registers
from attendance.web.apidoc import CSV, NOT_JSON, SPREADSHEETS, Reply, operation
from attendance.web.audit import audit
from attendance.web.auth import Forbidden, allowed_classes, check_class, current_principal, requires
from attendance.web.context import services
from attendance.web.exports import requested_format, spreadsheet
from attendance.web.forms import (
    date_range,
    invalid_request,
    json_object,
    optional_identifier,
    parse_date,
    refuse_unknown_fields,
)

bp = Blueprint("attendance", __name__, url_prefix="/api/v1/attendance")
CSV_FIELDS = [
    "class_id",
    "date",
    "period",
    "student_id",
    "name",
    "status",
    "source",
    "first_seen_at",
    "distance",
]


@bp.get("")
@requires(Role.viewer)
@operation(
    "listAttendance",
    "Attendance records.",
    query=AttendanceQuery,
    replies={200: Reply("Records (CSV with format=csv: an audited export).", AttendanceList, CSV)},
    errors={400: "An invalid id, date or period."},
)
def list_attendance():
    args = request.args
    class_id = optional_identifier(args, "class_id")
    student_id = optional_identifier(args, "student_id")
    date_from, date_to = date_range(args)
    period = validate_period(args["period"]) if "period" in args else None
    if class_id is not None:
        check_class(class_id)
    records = services().records.list_attendance(
        class_id=class_id,
        date_from=date_from,
        date_to=date_to,
        student_id=student_id,
        period=period,
    )
    allowed = allowed_classes()
    if allowed is not None:
        records = [r for r in records if r.class_id in allowed]
    fmt = args.get("format", "json")
    if fmt == "json":
        return jsonify(AttendanceList(records=records).model_dump(mode="json"))
    rows = [r.model_dump(mode="json") for r in records]
    if fmt != "csv":
        raise ValidationFailed("format must be json or csv", code="invalid_format")
    if current_principal().role < Role.teacher:
        raise Forbidden(
            "the viewer role may read attendance but not export it; exporting needs teacher"
        )
    # An export leaves the system: the audit log says who took which records.
    audit(
        "export_attendance",
        class_id or "*",
        records=len(rows),
        student_id=student_id,
        date_from=date_from.isoformat() if date_from else None,
        date_to=date_to.isoformat() if date_to else None,
        period=period,
    )
    # UTF-8 with a byte-order mark, so that spreadsheets read accented names right.
    return Response(
        ("\ufeff" + to_csv(rows, CSV_FIELDS)).encode("utf-8"),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="attendance.csv"'},
    )


def _register_key(class_id: str, date: str):
    validate_identifier(class_id, "class_id")
    day = parse_date(date, "date")
    check_class(class_id)
    return class_id, day


def _json_object(example: str, *, optional: bool = False) -> dict:
    return json_object(request, f"{request.method} {request.path}", example, optional=optional)


REGISTER_FIELDS = ["student_id", "name", "status", "source", "marked_by", "marked_at", "note"]


@bp.get("/<class_id>/<date>")
@requires(Role.viewer)
@operation(
    "getRegister",
    "The class's register for the date and period: every student enrolled, with their status "
    "and what marked them (absent: nothing did).",
    query=RegisterQuery,
    replies={
        200: Reply(
            "The register (format=csv or xlsx: one row per student, an audited export, teacher "
            "and up).",
            Register,
            SPREADSHEETS,
        )
    },
    errors={
        400: "An invalid class_id, date, period or format.",
        403: "An export by a viewer, or a class the token may not see.",
        404: "No student is enrolled in class_id (unknown_class).",
    },
)
def get_register(class_id: str, date: str):
    class_id, day = _register_key(class_id, date)
    period = validate_period(request.args.get("period"))
    fmt = requested_format(request.args, "the register")
    svc = services()
    found = registers.register(
        svc.records, class_id, day, period, threshold=svc.settings.match_threshold
    )
    if fmt == "json":
        return jsonify(found.model_dump(mode="json"))
    rows = [row.model_dump(mode="json") for row in found.rows]
    # An export leaves the system: the audit log says who took which register.
    audit(
        "export_register", class_id, date=day.isoformat(), period=period, format=fmt, rows=len(rows)
    )
    stem = f"register-{class_id}-{day.isoformat()}{'-' + period if period else ''}"
    return spreadsheet(rows, REGISTER_FIELDS, fmt, stem, title=day.isoformat())


_MARK = (
    "Mark a student by hand (teacher of the class or admin; audited). It replaces a face's "
    "mark, and a later photo never replaces it. On a signed-off register only an admin may, as "
    "an audited correction."
)
_MARK_ERRORS = {
    400: "An invalid id, date, status, period, note or field.",
    404: "No such student (unknown_student), or not enrolled in class_id (student_not_in_class).",
    409: "The register is signed off (register_finalized).",
    **NOT_JSON,
}
_MARKED = {200: Reply("The student's row before and after.", MarkResult)}


@bp.put("/<class_id>/<date>/<student_id>")
@requires(Role.teacher)
@operation("markAttendance", _MARK, body=MarkRequest, replies=_MARKED, errors=_MARK_ERRORS)
def mark_student(class_id: str, date: str, student_id: str):
    class_id, day = _register_key(class_id, date)
    validate_identifier(student_id, "student_id")
    body = _json_object('{"status": "late", "period": "1", "note": "..."}')
    try:
        wanted = MarkRequest.model_validate(body)
    except ValidationError as exc:
        raise invalid_request(exc) from None
    principal = current_principal()
    before, after = registers.mark(
        services().records,
        class_id,
        day,
        validate_period(wanted.period),
        student_id,
        wanted.status,
        wanted.note,
        actor=principal.name,
        is_admin=principal.role >= Role.admin,
        threshold=services().settings.match_threshold,
    )
    return jsonify(MarkResult(before=before, after=after).model_dump(mode="json"))


# A student's id may be "finalize": the static route below would hide them from the one above
# (and OpenAPI reads a concrete path before a templated one), so that PUT is routed here, in the
# open, rather than left to whichever rule the router happens to try first.
@bp.put("/<class_id>/<date>/finalize")
@requires(Role.teacher)
@operation(
    "markAttendanceOfFinalize",
    'The student whose id is "finalize": ' + _MARK,
    body=MarkRequest,
    replies=_MARKED,
    errors=_MARK_ERRORS,
)
def mark_student_finalize(class_id: str, date: str):
    return mark_student(class_id, date, "finalize")


@bp.post("/<class_id>/<date>/finalize")
@requires(Role.teacher)
@operation(
    "finalizeRegister",
    "Sign the register off (teacher of the class or admin; audited): from then on only an "
    "admin changes it. Again, it changes nothing.",
    body=FinalizeRequest,
    body_required=False,
    replies={200: Reply("The register's sign-off.", RegisterLock)},
    errors={
        400: "An invalid class_id, date, period or field.",
        404: "No student is enrolled in class_id (unknown_class).",
        **NOT_JSON,
    },
)
def finalize_register(class_id: str, date: str):
    class_id, day = _register_key(class_id, date)
    body = _json_object('{"period": "1"} (or no body: the whole day)', optional=True)
    refuse_unknown_fields(body, {"period"}, "only 'period' is taken")
    raw = body.get("period")
    if raw is not None and not isinstance(raw, str):
        raise ValidationFailed("period must be a string", code="invalid_period")
    lock = registers.finalize(
        services().records, class_id, day, validate_period(raw), current_principal().name
    )
    return jsonify(lock.model_dump(mode="json"))
