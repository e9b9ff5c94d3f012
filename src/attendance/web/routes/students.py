"""Enrolling students (queued), adding photos, renaming, erasing, and listing who is enrolled;
putting a student on the roster without photos; recording and withdrawing consent.

Nothing of a face is enrolled without the student's consent on record, given in the same
request or recorded before (attendance.domain.consent).
"""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, jsonify, request

from attendance.dispatch import ENROLL_TASK
from attendance.domain.api_shapes import (
    ConsentGiven,
    ConsentWithdrawal,
    EnrollmentForm,
    Erasure,
    ErasureQuery,
    PhotosForm,
    RosterEntry,
    StudentList,
    StudentListQuery,
    StudentRename,
)
from attendance.domain.auth import Role
from attendance.domain.consent import FIELDS as CONSENT_FIELDS
from attendance.domain.consent import (
    HOW_TO_GIVE,
    GivenConsent,
    latest_today,
    parse_consent,
    require_active_consent,
)
from attendance.domain.errors import NotFound, StudentExists, ValidationFailed
from attendance.domain.keys import enrollment_marker_key
from attendance.domain.pipelines import pipeline_id
from attendance.domain.schemas import (
    Consent,
    EnrollmentMode,
    EnrollmentRequest,
    Student,
    validate_identifier,
    validate_name,
)
from attendance.services.erasure import erase_face_data, erase_student
from attendance.web.apidoc import ACCEPTED, NOT_JSON, UPLOAD_ERRORS, Form, Reply, operation
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
from attendance.web.uploads import CheckedPhoto, read_photos

bp = Blueprint("students", __name__, url_prefix="/api/v1/students")


def _existing(student_id: str) -> Student:
    student = services().records.get_student(student_id)
    if student is None:
        raise NotFound(f"no student {student_id!r}", code="student_not_found")
    return student


def _record_consent(student_id: str, given: GivenConsent) -> Consent:
    consent = given.recorded(student_id, current_principal().name, dt.datetime.now(dt.UTC))
    services().records.put_consent(consent)
    return consent


def _audit_consent(student_id: str, given: GivenConsent, via: str) -> None:
    # The giver's name stays out of the audit log: it outlives an erasure.
    audit("record_consent", student_id, relationship=given.relationship, minor=given.minor, via=via)


def _require_consent_on_record(student_id: str) -> None:
    require_active_consent(services().records.get_consent(student_id), student_id)


def _submit_enrollment(student_id: str, mode: EnrollmentMode, name: str | None):
    settings = services().settings
    form = request.form
    class_id = optional_identifier(form, "class_id")
    given = parse_consent(form, latest_today())
    photos = read_photos(
        request.files,
        form,
        max_count=settings.max_enroll_photos,
        max_pixels=settings.max_image_pixels,
    )
    records = services().records
    previous = records.get_consent(student_id)
    mine = None
    if given is None:
        _require_consent_on_record(student_id)
    else:
        # Recorded before the job exists, so the worker finds it; put back as it was if the
        # job cannot be queued (unless something changed it since, a withdrawal say).
        mine = _record_consent(student_id, given)
    try:
        response = _queue_enrollment(student_id, mode, name, class_id, photos)
    except BaseException:
        if mine is not None and records.get_consent(student_id) == mine:
            if previous is None:
                records.delete_consent(student_id)
            else:
                records.put_consent(previous)
        raise
    if given is not None:
        _audit_consent(student_id, given, via="enrollment")
    return response


def _queue_enrollment(
    student_id: str,
    mode: EnrollmentMode,
    name: str | None,
    class_id: str | None,
    photos: list[CheckedPhoto],
):
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


def _add_to_roster():
    """POST /api/v1/students with a JSON body: the student on the roster at once, no photos
    (and so no face data: they are marked by hand)."""
    body = json_object(
        request,
        "POST /api/v1/students",
        '{"student_id": "...", "name": "...", "class_id": "..."}',
    )
    refuse_unknown_fields(
        body,
        {"student_id", "name", "class_id"},
        "a student put on the roster without photos has student_id, name and class_id",
    )
    for field in ("student_id", "name", "class_id"):
        if body.get(field) is not None and not isinstance(body[field], str):
            raise ValidationFailed(f"{field} must be text", code=f"invalid_{field}")
    student_id = validate_identifier(body.get("student_id"), "student_id")
    name = validate_name(body.get("name"))
    class_id = validate_identifier(body.get("class_id"), "class_id")
    records = services().records
    existing = records.get_student(student_id)
    if existing is not None and existing.name != name:
        raise StudentExists(
            f"student id {student_id!r} is taken by another student already; to rename them "
            f"PATCH /api/v1/students/{student_id}"
        )
    records.upsert_student(student_id, name, class_id)
    if existing is None or class_id not in existing.class_ids:
        audit("add_student", student_id, class_id=class_id)
    response = jsonify(_answer(_existing(student_id)))
    response.status_code = 201 if existing is None else 200
    return response


@bp.post("")
@operation(
    "enrollStudent",
    "Enroll a new student (multipart with photos; runs as a job), with their consent given in "
    "the same request or recorded before; or (a JSON body) put a student on the roster with no "
    "photos, at once. An id that is taken answers 409 student_exists (add photos or rename "
    "with their own routes); an enrollment without consent on record 409 consent_required.",
    form=Form(EnrollmentForm, max_photos=lambda settings: settings.max_enroll_photos),
    body=RosterEntry,
    replies={
        200: Reply(
            "JSON body: the student was on the roster already under that name (the class is "
            "added).",
            Student,
        ),
        201: Reply("JSON body: the student, on the roster.", Student),
        202: ACCEPTED,
    },
    errors={
        **UPLOAD_ERRORS,
        409: "The student_id is taken (student_exists), or no consent is on record "
        "(consent_required).",
    },
)
def enroll_student():
    if request.mimetype == "application/json":
        return _add_to_roster()
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
@operation(
    "addStudentPhotos",
    "Add photos to an enrolled student (and optionally a class); runs as a job, like an "
    "enrollment.",
    form=Form(PhotosForm, max_photos=lambda settings: settings.max_enroll_photos),
    replies={202: ACCEPTED},
    errors={
        **UPLOAD_ERRORS,
        404: "No such student.",
        409: "No consent is on record and none was given (consent_required).",
    },
)
def add_photos(student_id: str):
    validate_identifier(student_id, "student_id")
    require_form(request)
    _existing(student_id)
    return _submit_enrollment(student_id, "add", None)


@bp.patch("/<student_id>")
@operation(
    "renameStudent",
    "Rename a student (audited).",
    body=StudentRename,
    replies={200: Reply("The student, renamed.", Student)},
    errors={400: "Invalid student_id or name.", 404: "No such student.", **NOT_JSON},
)
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
    return jsonify(_answer(_existing(student_id)))


@bp.delete("/<student_id>")
@operation(
    "deleteStudent",
    "Erase a student everywhere: embeddings (a new gallery version), enrollment photos, "
    "records; with attendance=true also their attendance and the class photos that recognised "
    "them. Idempotent: again, it removes whatever is left (200, maybe all zero); 404 only for "
    "an id never known.",
    query=ErasureQuery,
    replies={200: Reply("What was removed.", Erasure)},
    errors={400: "Invalid student_id or attendance.", 404: "No such student."},
)
def delete_student(student_id: str):
    validate_identifier(student_id, "student_id")
    raw = request.args.get("attendance", "false").lower()
    if raw not in ("true", "false"):
        raise ValidationFailed("attendance must be true or false", code="invalid_attendance")
    svc = services()
    erasure = Erasure.model_validate(
        erase_student(svc.blobs, svc.records, student_id, attendance=raw == "true")
    )
    audit("delete_student", student_id, **erasure.model_dump(exclude={"student_id"}))
    return jsonify(erasure.model_dump(mode="json"))


def _visible(student: Student) -> Student | None:
    """The student as the caller may see them: a class-limited teacher sees only their own
    classes among the student's, and not at all a student in none of them."""
    allowed = allowed_classes()
    if allowed is None:
        return student
    mine = [c for c in student.class_ids if c in allowed]
    return student.model_copy(update={"class_ids": mine}) if mine else None


def _with_embeddings(students: list[Student]) -> list[Student]:
    manifest = current_manifest()
    # Those of the current pipeline: the only ones a recognition matches.
    counts = manifest.embeddings_per_student(pipeline_id(services().settings)) if manifest else {}
    held = manifest.embeddings_per_student() if manifest else {}
    consents = services().records.consents(s.student_id for s in students)
    return [
        s.model_copy(
            update={
                "embeddings": counts.get(s.student_id, 0),
                "consent": consents.get(s.student_id),
                "face_data": held.get(s.student_id, 0) > 0,
            }
        )
        for s in students
    ]


def _answer(student: Student) -> dict:
    return _with_embeddings([student])[0].model_dump(mode="json")


@bp.put("/<student_id>/consent")
@requires(Role.teacher)
@operation(
    "putConsent",
    "Record the student's consent to hold their face data, replacing any earlier one (a "
    "withdrawn one too); a teacher of one of their classes or an admin (audited).",
    body=ConsentGiven,
    replies={200: Reply("The student, with the consent recorded.", Student)},
    errors={
        400: "Invalid student_id, a consent field missing or invalid, a date in the future, or "
        "a minor's consent not given by a parent or guardian.",
        404: "No such student (or not in the caller's classes).",
        **NOT_JSON,
    },
)
def put_consent(student_id: str):
    """Record the student's consent (a teacher of one of their classes, or an admin)."""
    validate_identifier(student_id, "student_id")
    body = json_object(
        request,
        "PUT /api/v1/students/<student_id>/consent",
        '{"consent_given_by": "...", "consent_relationship": "parent", '
        '"consent_given_on": "YYYY-MM-DD", "minor": true}',
    )
    refuse_unknown_fields(body, set(CONSENT_FIELDS), f"consent has {', '.join(CONSENT_FIELDS)}")
    student = services().records.get_student(student_id)
    if student is None or _visible(student) is None:
        raise NotFound(f"no student {student_id!r}", code="student_not_found")
    if "minor" in body and not isinstance(body["minor"], bool):
        raise ValidationFailed("minor must be true or false", code="invalid_consent")
    given = parse_consent(body, latest_today())
    if given is None:
        raise ValidationFailed(f"consent is missing; {HOW_TO_GIVE}", code="invalid_consent")
    _record_consent(student_id, given)
    _audit_consent(student_id, given, via="consent")
    visible = _visible(_existing(student_id))
    assert visible is not None
    return jsonify(_answer(visible))


@bp.delete("/<student_id>/consent")
@operation(
    "withdrawConsent",
    "Withdraw the student's consent, then erase their face data: embeddings (a new gallery "
    "version) and enrollment photos with their uploads. The student, their classes and "
    "attendance stay. Audited; idempotent (again: 200, zeros).",
    replies={200: Reply("The withdrawal, and what was removed.", ConsentWithdrawal)},
    errors={400: "Invalid student_id.", 404: "No such student."},
)
def withdraw_consent(student_id: str):
    """Withdraw the student's consent, then erase their face data; the student, their classes
    and their attendance stay. Again: 200, nothing more removed."""
    validate_identifier(student_id, "student_id")
    svc = services()
    _existing(student_id)
    # Recorded before anything is erased: an enrollment checking after its gallery swap sees
    # it (attendance.services.enrollment).
    consent = svc.records.withdraw_consent(
        student_id, current_principal().name, dt.datetime.now(dt.UTC)
    )
    summary = erase_face_data(svc.blobs, svc.records, student_id)
    removed = {k: v for k, v in summary.items() if k != "student_id"}
    audit("withdraw_consent", student_id, **removed)
    withdrawal = ConsentWithdrawal(student_id=student_id, consent=consent, **removed)
    return jsonify(withdrawal.model_dump(mode="json"))


@bp.get("")
@requires(Role.teacher)
@operation(
    "listStudents",
    "Enrolled students.",
    query=StudentListQuery,
    replies={200: Reply("Students.", StudentList)},
    errors={400: "Invalid class_id."},
)
def list_students():
    class_id = optional_identifier(request.args, "class_id")
    if class_id is not None:
        check_class(class_id)
    students = [v for s in services().records.list_students(class_id) if (v := _visible(s))]
    return jsonify(StudentList(students=_with_embeddings(students)).model_dump(mode="json"))


@bp.get("/<student_id>")
@requires(Role.teacher)
@operation(
    "getStudent",
    "One student.",
    replies={200: Reply("The student.", Student)},
    errors={400: "Invalid student_id.", 404: "No such student."},
)
def get_student(student_id: str):
    validate_identifier(student_id, "student_id")
    student = services().records.get_student(student_id)
    visible = _visible(student) if student is not None else None
    if visible is None:
        raise NotFound(f"no student {student_id!r}", code="student_not_found")
    return jsonify(_answer(visible))
