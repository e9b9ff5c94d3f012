"""Who was present, filtered by class, date range and student."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from web.context import services
from web.forms import date_range, optional_identifier

bp = Blueprint("attendance", __name__, url_prefix="/api/v1/attendance")


@bp.get("")
def list_attendance():
    args = request.args
    class_id = optional_identifier(args, "class_id")
    student_id = optional_identifier(args, "student_id")
    date_from, date_to = date_range(args)
    records = services().records.list_attendance(
        class_id=class_id, date_from=date_from, date_to=date_to, student_id=student_id
    )
    return jsonify({"records": [r.model_dump(mode="json") for r in records]})
