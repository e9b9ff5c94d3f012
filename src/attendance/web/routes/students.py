"""Enrolling students (queued), adding photos, renaming, erasing, and listing who is enrolled."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, jsonify, request

from attendance.dispatch import ENROLL_TASK
from attendance.domain.auth import Role
from attendance.domain.errors import NotFound, StudentExists, ValidationFailed
from attendance.domain.keys import enrollment_marker_key
from attendance.domain.pipelines import pipeline_id
from attendance.domain.schemas import (
    EnrollmentMode,
    EnrollmentRequest,
    Student,
    validate_identifier,
    validate_name,
)
from attendance.services.erasure import erase_student
from attendance.web.audit import audit
from attendance.web.auth import allowed_classes, check_class, current_principal, requires
from attendance.web.context import current_manifest, services
from attendance.web.forms import (
    json_object,
    optional_identifier,
    refuse_unknown_fields,
    require_form,
)
from attendance.web.submission import submit_job
from attendance.web.uploads import read_photos

bp = Blueprint("students", __name__, url_prefix="/api/v1/students")


def _existing(student_id: str) -> Student:
    student = services().records.get_student(student_id)
    if student is None:
        raise NotFound(f"no student {student_id!r}", code="student_not_found")
    return student


def _submit_enrollment(student_id: str, mode: EnrollmentMode, name: str | None):
    settings = services().settings
    form = request.form
    class_id = optional_identifier(form, "class_id")
    photos = read_photos(
        request.files,
        form,
        max_count=settings.max_enroll_photos,
        max_pixels=settings.max_image_pixels,
    )
    requested_at = dt.datetime.now(dt.UTC)
    return submit_job(
        "enrollment",
        ENROLL_TASK,
        photos,
        lambda job_id, uploads: EnrollmentRequest(
            job_id=job_id,
            student_id=student_id,
            mode=mode,
            name=name,
            class_id=class_id,
            photos=uploads,
            requested_by=current_principal().name,
            requested_at=requested_at,
        ),
        class_id=class_id,
        marker=lambda job_id: enrollment_marker_key(student_id, job_id),
    )


@bp.post("")
def enroll_student():
    require_form(request)
    form = request.form
    student_id = validate_identifier(form.get("student_id"), "student_id")
    name = validate_name(form.get("name"))
    existing = services().records.get_student(student_id)
    if existing is not None:
        # Ids are global: a typo must not take over another class's student.
        raise StudentExists(
            f"student id {student_id!r} is taken by a student enrolled already; to add photos "
            f"to them use POST /api/v1/students/{student_id}/photos, to rename them PATCH "
            f"/api/v1/students/{student_id}"
            + ("" if existing.name == name else " (the name given differs from theirs)")
        )
    return _submit_enrollment(student_id, "create", name)


@bp.post("/<student_id>/photos")
def add_photos(student_id: str):
    validate_identifier(student_id, "student_id")
    require_form(request)
    _existing(student_id)
    return _submit_enrollment(student_id, "add", None)


@bp.patch("/<student_id>")
def rename_student(student_id: str):
    validate_identifier(student_id, "student_id")
    body = json_object(request, "PATCH /api/v1/students/<student_id>", '{"name": "..."}')
    refuse_unknown_fields(body, {"name"}, "only 'name' can be changed")
    name = validate_name(body.get("name") if isinstance(body.get("name"), str) else None)
    records = services().records
    before = _existing(student_id)
    if before.name != name:
        if not records.rename_student(student_id, name):
            raise NotFound(f"no student {student_id!r}", code="student_not_found")
        # Names stay out of the audit log: it outlives an erasure.
        audit("rename_student", student_id)
    return jsonify(_with_embeddings([_existing(student_id)])[0])


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


def _visible(student: Student) -> Student | None:
    """The student as the caller may see them: a class-limited teacher sees only their own
    classes among the student's, and not at all a student in none of them."""
    allowed = allowed_classes()
    if allowed is None:
        return student
    mine = [c for c in student.class_ids if c in allowed]
    return student.model_copy(update={"class_ids": mine}) if mine else None


def _with_embeddings(students: list[Student]) -> list[dict]:
    manifest = current_manifest()
    # Those of the current pipeline: the only ones a recognition matches.
    counts = manifest.embeddings_per_student(pipeline_id(services().settings)) if manifest else {}
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
    students = [v for s in services().records.list_students(class_id) if (v := _visible(s))]
    return jsonify({"students": _with_embeddings(students)})


@bp.get("/<student_id>")
@requires(Role.teacher)
def get_student(student_id: str):
    validate_identifier(student_id, "student_id")
    student = services().records.get_student(student_id)
    visible = _visible(student) if student is not None else None
    if visible is None:
        raise NotFound(f"no student {student_id!r}", code="student_not_found")
    return jsonify(_with_embeddings([visible])[0])
