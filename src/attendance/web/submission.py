"""Turning a validated request into a queued job: job state, stored uploads, one task message
(and a copy of it, for the reconciler).

Either all three exist afterwards or none does: a client that got an error must not leave
uploads or a forever-"queued" job behind.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import jsonify, url_for
from pydantic import BaseModel

from attendance.dispatch import enqueue, task_queue
from attendance.domain.errors import ServiceUnavailable
from attendance.domain.schemas import JobKind, Upload
from attendance.stores.jobs import StoredTask, new_job_id
from attendance.web.context import services
from attendance.web.errors import UNAVAILABLE_ERRORS
from attendance.web.uploads import CheckedPhoto, discard_uploads, store_photos

log = logging.getLogger(__name__)

_UNAVAILABLE_MESSAGE = "the job queue (Redis) is unavailable, nothing was stored; try again later"


def submit_job(
    kind: JobKind,
    task_name: str,
    photos: list[CheckedPhoto],
    build_payload: Callable[[str, list[Upload]], BaseModel],
    *,
    class_id: str | None = None,
    marker: Callable[[str], str] | None = None,
):
    """Create the job, store the photos, enqueue; answer 202 with where to poll.

    ``class_id`` is whose job it is (who may read it); ``marker(job_id)`` names an empty blob
    stored with the uploads (and gone with them on failure), for an erasure to find the job."""
    svc = services()
    job_id = _queue(
        kind,
        task_name,
        len(photos),
        lambda job_id: store_photos(svc.blobs, job_id, photos),
        build_payload,
        class_id=class_id,
        marker=marker,
        owned=True,
    )
    status_url = url_for("jobs.get_job", job_id=job_id)
    response = jsonify({"job_id": job_id, "status_url": status_url})
    response.status_code = 202
    response.headers["Location"] = status_url
    return response


def submit_stored(
    kind: JobKind,
    task_name: str,
    uploads: list[Upload],
    build_payload: Callable[[str, list[Upload]], BaseModel],
    *,
    class_id: str | None = None,
    marker: Callable[[str], str] | None = None,
) -> tuple[str, str]:
    """As submit_job, over uploads stored already (another job's: they stay that job's, and
    nothing here deletes them); return the job's id and where to poll it."""
    job_id = _queue(
        kind,
        task_name,
        len(uploads),
        lambda _job_id: list(uploads),
        build_payload,
        class_id=class_id,
        marker=marker,
        owned=False,
    )
    return job_id, url_for("jobs.get_job", job_id=job_id)


def _queue(
    kind: JobKind,
    task_name: str,
    total: int,
    store: Callable[[str], list[Upload]],
    build_payload: Callable[[str, list[Upload]], BaseModel],
    *,
    class_id: str | None,
    marker: Callable[[str], str] | None,
    owned: bool,
) -> str:
    """The job, its uploads (``store(job_id)``; deleted again on failure when ``owned``) and
    its task message, or none of them; return the job's id."""
    svc = services()
    job_id = new_job_id()
    # The job exists before the task does, so a fast worker always finds it to update; and when
    # Redis is down this fails before any upload is written.
    try:
        svc.jobs.create(job_id, kind, total=total, class_id=class_id)
    except UNAVAILABLE_ERRORS as exc:
        raise ServiceUnavailable(_UNAVAILABLE_MESSAGE) from exc

    uploads: list[Upload] = []
    marker_key = marker(job_id) if marker is not None else None
    try:
        if marker_key is not None:
            svc.blobs.put(marker_key, b"")
        uploads = store(job_id)
        payload = build_payload(job_id, uploads).model_dump(mode="json")
        # A copy of the task before its message: should the message be lost (Redis restarted
        # on an append-only file that missed its last second, this process killed before the
        # enqueue returned), the reconciler sends it again rather than failing an accepted job.
        svc.jobs.remember_task(job_id, StoredTask(task_name, payload, task_queue(svc.celery)))
        enqueue(svc.celery, task_name, payload, job_id)
    except BaseException as exc:
        if owned:
            discard_uploads(svc.blobs, uploads)
        if marker_key is not None:
            discard_uploads(svc.blobs, [Upload(key=marker_key, filename="marker")])
        _forget_job(job_id)
        if isinstance(exc, UNAVAILABLE_ERRORS):
            raise ServiceUnavailable(_UNAVAILABLE_MESSAGE) from exc
        raise
    return job_id


def _forget_job(job_id: str) -> None:
    try:
        services().jobs.delete(job_id)
    except Exception:
        # Redis is probably what failed; the key still expires after job_ttl_seconds.
        log.warning("could not delete job %s after a failed submission", job_id, exc_info=True)
