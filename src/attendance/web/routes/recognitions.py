"""Recognising who is in class photos (queued), and the annotated photos the worker drew."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, Response, request

from attendance.dispatch import RECOGNISE_TASK
from attendance.domain.api_shapes import RecognitionForm
from attendance.domain.auth import Role
from attendance.domain.errors import NotFound
from attendance.domain.keys import annotated_key
from attendance.domain.schemas import RecognitionRequest, validate_identifier, validate_period
from attendance.web.apidoc import ACCEPTED, JPEG, UPLOAD_ERRORS, Form, Reply, operation
from attendance.web.auth import check_class, current_principal, requires
from attendance.web.context import services
from attendance.web.forms import is_job_id, optional_date, require_form
from attendance.web.routes.jobs import visible_job
from attendance.web.submission import submit_job
from attendance.web.uploads import read_photos

bp = Blueprint("recognitions", __name__, url_prefix="/api/v1")


@bp.post("/recognitions")
@requires(Role.teacher)
@operation(
    "recognise",
    "Take attendance from class photos; runs as a job.",
    form=Form(RecognitionForm, max_photos=lambda settings: settings.max_recognition_photos),
    replies={202: ACCEPTED},
    errors={**UPLOAD_ERRORS, 404: "No student is enrolled in class_id."},
)
def recognise():
    svc = services()
    require_form(request)
    form = request.form
    class_id = validate_identifier(form.get("class_id"), "class_id")
    check_class(class_id)
    date = optional_date(form, "date") or dt.datetime.now(dt.UTC).date()
    period = validate_period(form.get("period"))
    # Cheap, and saves decoding every photo for a class nobody is enrolled in.
    if not svc.records.class_exists(class_id):
        raise NotFound(f"no student is enrolled in class {class_id!r}", code="unknown_class")
    photos = read_photos(
        request.files,
        form,
        max_count=svc.settings.max_recognition_photos,
        max_pixels=svc.settings.max_image_pixels,
    )
    requested_at = dt.datetime.now(dt.UTC)
    return submit_job(
        "recognition",
        RECOGNISE_TASK,
        photos,
        lambda job_id, uploads: RecognitionRequest(
            job_id=job_id,
            class_id=class_id,
            date=date,
            period=period,
            photos=uploads,
            requested_at=requested_at,
        ),
        class_id=class_id,
    )


@bp.get("/annotated/<job_id>/<int:n>")
@requires(Role.teacher)
@operation(
    "annotatedPhoto",
    "Photo n of a recognition job with the faces boxed and named.",
    replies={200: Reply("JPEG.", media=JPEG)},
    errors={404: "No such job or photo."},
)
def annotated_photo(job_id: str, n: int):
    if current_principal().classes is not None:
        # Only the job says whose photo this is: a class-limited teacher sees the photos of
        # their classes' jobs while the job is kept (ATTENDANCE_JOB_TTL_SECONDS).
        visible_job(job_id)
    elif not is_job_id(job_id):
        raise NotFound(f"no job {job_id[:64]!r}", code="job_not_found")
    key = annotated_key(job_id, n)
    try:
        data = services().blobs.get(key)
    except NotFound:
        raise NotFound(
            f"no annotated photo {n} for job {job_id}", code="annotated_not_found"
        ) from None
    response = Response(data, mimetype="image/jpeg")
    # The worker writes each annotated photo once; it never changes under the same URL.
    response.headers["Cache-Control"] = "private, max-age=86400, immutable"
    return response
