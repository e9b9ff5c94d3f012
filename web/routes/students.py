"""Enrolling students (queued) and listing who is enrolled."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from common.errors import NotFound, ValidationFailed
from common.erasure import erase_student
from common.queue import ENROLL_TASK
from common.schemas import EnrollmentRequest, Student, validate_identifier, validate_name
from common.auth import Role
from web.auth import allowed_classes, check_class, current_principal, requires
from web.audit import audit
from web.context import current_manifest, services
from web.forms import optional_identifier, require_form
from web.submission import submit_job
from web.uploads import read_photos

bp = Blueprint("students", __name__, url_prefix="/api/v1/students")


@bp.post("")
def enroll_student():
    settings = services().settings
    require_form(request)
    form = request.form
    student_id = validate_identifier(form.get("student_id"), "student_id")
    name = validate_name(form.get("name"))
    class_id = optional_identifier(form, "class_id")
    photos = read_photos(
        request.files, form,
        max_count=settings.max_enroll_photos, max_pixels=settings.max_image_pixels,
    )
    return submit_job(
        "enrollment", ENROLL_TASK, photos,
        lambda job_id, uploads: EnrollmentRequest(
            job_id=job_id, student_id=student_id, name=name, class_id=class_id, photos=uploads,
            requested_by=current_principal().name,
        ),
    )


@bp.delete("/<student_id>")
def delete_student(student_id: str):
    validate_identifier(student_id, "student_id")
    raw = request.args.get("attendance", "false").lower()
    if raw not in ("true", "false"):
        raise ValidationFailed("attendance must be true or false", code="invalid_attendance")
    svc = services()
    summary = erase_student(svc.blobs, svc.records, student_id, attendance=raw == "true")
    audit("delete_student", student_id, **{k: v for k, v in summary.items() if k != "student_id"})
    return jsonify(summary)


def _visible(student: Student) -> bool:
    allowed = allowed_classes()
    return allowed is None or bool(allowed.intersection(student.class_ids))


def _with_embeddings(students: list[Student]) -> list[dict]:
    manifest = current_manifest()
    counts = manifest.embeddings_per_student() if manifest else {}
    return [
        s.model_copy(update={"embeddings": counts.get(s.student_id, 0)}).model_dump(mode="json")
        for s in students
    ]


@bp.get("")
@requires(Role.teacher)
def list_students():
    class_id = optional_identifier(request.args, "class_id")
    if class_id is not None:
        check_class(class_id)
    students = [s for s in services().records.list_students(class_id) if _visible(s)]
    return jsonify({"students": _with_embeddings(students)})


@bp.get("/<student_id>")
@requires(Role.teacher)
def get_student(student_id: str):
    validate_identifier(student_id, "student_id")
    student = services().records.get_student(student_id)
    if student is None or not _visible(student):
        raise NotFound(f"no student {student_id!r}", code="student_not_found")
    return jsonify(_with_embeddings([student])[0])
