"""Who was present, filtered by class, date range and student."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from common.auth import Role
from web.auth import allowed_classes, check_class, requires
from web.context import services
from web.forms import date_range, optional_identifier

bp = Blueprint("attendance", __name__, url_prefix="/api/v1/attendance")


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
    return jsonify({"records": [r.model_dump(mode="json") for r in records]})
