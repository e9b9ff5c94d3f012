"""Polling a queued enrollment or recognition."""

from __future__ import annotations

from flask import Blueprint, jsonify

from attendance.domain.auth import Role
from attendance.domain.errors import NotFound
from attendance.domain.schemas import JobView
from attendance.web.auth import Forbidden, check_class, current_principal, requires
from attendance.web.context import services
from attendance.web.forms import is_job_id

bp = Blueprint("jobs", __name__, url_prefix="/api/v1/jobs")


def visible_job(job_id: str) -> JobView:
    """The job, if the caller may see it: a class-limited teacher sees only their classes'."""
    if not is_job_id(job_id):
        raise NotFound(f"no job {job_id[:64]!r}", code="job_not_found")
    job = services().jobs.get(job_id)
    if current_principal().classes is not None:
        if job.class_id is None:
            raise Forbidden(
                "this token may see only the jobs of its classes", code="class_forbidden"
            )
        check_class(job.class_id)
    return job


def _with_names(result: dict) -> dict:
    """Stored results name students by id only (an erased student's name must not outlive
    them there); the names are those the records hold now."""
    ids = {
        face["student_id"]
        for photo in result.get("photos", [])
        for face in photo.get("faces", [])
        if face.get("student_id")
    }
    if not ids:
        return result
    names = {
        s.student_id: s.name
        for s in services().records.list_students(result["class_id"])
        if s.student_id in ids
    }
    for photo in result["photos"]:
        for face in photo["faces"]:
            face["name"] = names.get(face.get("student_id"))
    return result


@bp.get("/<job_id>")
@requires(Role.teacher)
def get_job(job_id: str):
    view = visible_job(job_id).model_dump(mode="json")
    if view["kind"] == "recognition" and view.get("result"):
        view["result"] = _with_names(view["result"])
    return jsonify(view)
