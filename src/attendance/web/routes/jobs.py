"""Polling a queued enrollment or recognition; settling a recognised class photo's faces (whose
face each is, its picture, learning it as one of the student's enrollment photos)."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, Response, jsonify, request

from attendance.dispatch import ENROLL_TASK
from attendance.domain.api_shapes import FaceAssignment, SettledFace
from attendance.domain.auth import Role
from attendance.domain.consent import require_active_consent
from attendance.domain.errors import NotFound, ValidationFailed
from attendance.domain.keys import enrollment_marker_key
from attendance.domain.schemas import EnrollmentRequest, JobView, Upload, validate_identifier
from attendance.services import settle
from attendance.web.apidoc import JPEG, NOT_JSON, Reply, operation
from attendance.web.audit import audit
from attendance.web.auth import Forbidden, check_class, current_principal, requires
from attendance.web.context import services
from attendance.web.forms import is_job_id, json_object, refuse_unknown_fields
from attendance.web.submission import submit_stored

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
@operation(
    "getJob",
    "State, progress and result of a job: once succeeded, an enrollment's, a recognition's or "
    "(POST /api/v1/model/reembed) a re-embedding's result.",
    replies={200: Reply("The job.", JobView)},
    errors={404: "No such job (or it expired).", 503: "Redis is unavailable."},
)
def get_job(job_id: str):
    view = visible_job(job_id).model_dump(mode="json")
    if view["kind"] == "recognition" and view.get("result"):
        view["result"] = _with_names(view["result"])
    return jsonify(view)


# --- settling a face of a class photo -----------------------------------------------------------

_FACE = "/<job_id>/photos/<n>/faces/<k>"
_ASSIGN_EXAMPLE = '{"student_id": "ann", "learn": false} (or {"student_id": null} to reject)'


@bp.post(f"{_FACE}/assign")
@requires(Role.teacher)
@operation(
    "assignFace",
    "Settle a face of a recognised class photo: whose it is (the student is marked present "
    "from it, a person's mark; late stays late), or null: its match was wrong (a mark whose "
    "evidence it is moves to the student's next best face in the job, or becomes absent). "
    "learn: also queue an enrollment adding this face to the student's photos. Teacher of the "
    "job's class; once the register is signed off, an admin's correction.",
    body=FaceAssignment,
    replies={200: Reply("Settled.", SettledFace)},
    errors={
        400: "An unknown field, a bad student_id, learn not a boolean, or learn without a student.",
        403: "A viewer, or a job of a class the token may not see.",
        404: "job_not_found, photo_not_found, face_not_found, unknown_student or "
        "student_not_in_class.",
        409: "job_not_finished (not a succeeded recognition), register_finalized (signed off; "
        "only an admin corrects it), or consent_required (learn, without the student's "
        "consent on record).",
        410: "photo_expired: learn, after the photo was purged.",
        **NOT_JSON,
        503: "Redis is unavailable.",
    },
)
def assign_face(job_id: str, n: str, k: str):
    job = visible_job(job_id)
    body = json_object(request, "POST .../faces/<k>/assign", _ASSIGN_EXAMPLE)
    refuse_unknown_fields(body, {"student_id", "learn"}, "'student_id' and 'learn' are taken")
    if "student_id" not in body:
        raise ValidationFailed(
            "student_id is required: a student's id, or null to reject the face's match",
            code="missing_student_id",
        )
    student_id = body["student_id"]
    if student_id is not None:
        if not isinstance(student_id, str):
            raise ValidationFailed("student_id must be a string or null", code="invalid_student_id")
        validate_identifier(student_id, "student_id")
    learn = body.get("learn", False)
    if not isinstance(learn, bool):
        raise ValidationFailed("learn must be true or false", code="invalid_learn")
    if learn and student_id is None:
        raise ValidationFailed(
            "learn needs a student_id: whose face to learn", code="invalid_learn"
        )
    svc = services()
    principal = current_principal()
    # Before anything changes: a face is learnt only with the student's consent on record,
    # and a photo the retention purge took cannot be learnt from.
    upload = None
    if learn:
        assert student_id is not None
        require_active_consent(svc.records.get_consent(student_id), student_id)
        upload = settle.learn_upload(svc.blobs, job, n, k)
    settled = settle.settle(
        svc.records,
        svc.jobs,
        job,
        n,
        k,
        student_id,
        actor=principal.name,
        is_admin=principal.role >= Role.admin,
        threshold=svc.settings.match_threshold,
    )
    learn_job_id = learn_status_url = None
    if upload is not None:
        assert student_id is not None
        learn_job_id, learn_status_url = _learn(job, upload, n, k, student_id)
    face = settled.face
    if student_id is not None:
        face = face.model_copy(
            update={"name": settled.row.name if settled.row is not None else None}
        )
    answer = SettledFace(
        row=settled.row,
        face=face,
        learn_job_id=learn_job_id,
        learn_status_url=learn_status_url,
    )
    return jsonify(answer.model_dump(mode="json"))


def _learn(job: JobView, upload: Upload, n: str, k: str, student_id: str) -> tuple[str, str]:
    """Queue an enrollment adding this face to the student's photos; it reads the class
    photo's own upload (the face's box in it) and applies every check an enrollment does."""
    principal = current_principal()
    requested_at = dt.datetime.now(dt.UTC)
    learn_job_id, status_url = submit_stored(
        "enrollment",
        ENROLL_TASK,
        [upload],
        lambda learn_id, uploads: EnrollmentRequest(
            job_id=learn_id,
            student_id=student_id,
            mode="add",
            photos=uploads,
            requested_by=principal.name,
            requested_at=requested_at,
        ),
        class_id=job.class_id,
        marker=lambda learn_id: enrollment_marker_key(student_id, learn_id),
    )
    audit(
        "learn_face",
        student_id,
        job_id=job.job_id,
        photo=int(n),
        face=int(k),
        learn_job_id=learn_job_id,
    )
    return learn_job_id, status_url


@bp.get(f"{_FACE}/image")
@requires(Role.teacher)
@operation(
    "getFaceImage",
    "The face, cut from the stored class photo (a margin around it, at most 256 px on its "
    "longer side). Teacher of the job's class.",
    replies={200: Reply("JPEG.", media=JPEG)},
    errors={
        403: "A viewer, or a job of a class the token may not see.",
        404: "job_not_found, photo_not_found or face_not_found.",
        409: "job_not_finished: not a succeeded recognition.",
        410: "photo_expired: the retention policy deleted the photo.",
        503: "Redis is unavailable.",
    },
)
def face_image(job_id: str, n: str, k: str):
    job = visible_job(job_id)
    response = Response(settle.face_image(services().blobs, job, n, k), mimetype="image/jpeg")
    # The face's box never changes, but the photo goes with the retention purge.
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response
