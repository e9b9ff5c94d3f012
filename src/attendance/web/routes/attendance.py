"""Who was present, filtered by class, date range and student."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from attendance.domain.auth import Role
from attendance.domain.errors import ValidationFailed
from attendance.domain.exports import to_csv
from attendance.web.audit import audit
from attendance.web.auth import Forbidden, allowed_classes, check_class, current_principal, requires
from attendance.web.context import services
from attendance.web.forms import date_range, optional_identifier

bp = Blueprint("attendance", __name__, url_prefix="/api/v1/attendance")
CSV_FIELDS = ["class_id", "date", "student_id", "name", "first_seen_at", "distance"]


@bp.get("")
@requires(Role.viewer)
def list_attendance():
    args = request.args
    class_id = optional_identifier(args, "class_id")
    student_id = optional_identifier(args, "student_id")
    date_from, date_to = date_range(args)
    if class_id is not None:
        check_class(class_id)
    records = services().records.list_attendance(
        class_id=class_id, date_from=date_from, date_to=date_to, student_id=student_id
    )
    allowed = allowed_classes()
    if allowed is not None:
        records = [r for r in records if r.class_id in allowed]
    rows = [r.model_dump(mode="json") for r in records]
    fmt = args.get("format", "json")
    if fmt == "json":
        return jsonify({"records": rows})
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
    )
    # UTF-8 with a byte-order mark, so that spreadsheets read accented names right.
    return Response(
        ("\ufeff" + to_csv(rows, CSV_FIELDS)).encode("utf-8"),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="attendance.csv"'},
    )
