"""Enroll a student: one face per photo, embed them in one batch, commit a new gallery version."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Callable

import numpy as np

from common.errors import AppError, NoUsablePhoto
from common.images import decode_bgr
from common.keys import student_photo_key
from common.pipeline import FacePipeline
from common.schemas import AuditEntry, EnrollmentRequest, EnrollmentResult, Rejected

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


def enroll(pipe: FacePipeline, req: EnrollmentRequest, progress: Progress) -> EnrollmentResult:
    crops: list[np.ndarray] = []
    accepted: list[str] = []
    rejected: list[Rejected] = []
    total = len(req.photos)
    for done, upload in enumerate(req.photos, start=1):
        try:
            faces = pipe.detector.detect(decode_bgr(pipe.blobs.get(upload.key)))
        except AppError:
            raise
        except Exception as exc:  # a photo the decoder or detector cannot handle
            log.warning("job %s: %s unreadable: %s", req.job_id, upload.filename, exc)
            rejected.append(Rejected(filename=upload.filename, reason="not a readable image"))
        else:
            if not faces:
                rejected.append(Rejected(filename=upload.filename, reason="no face found"))
            elif len(faces) > 1:
                rejected.append(Rejected(
                    filename=upload.filename,
                    reason=f"{len(faces)} faces found; an enrollment photo must show one face",
                ))
            else:
                crops.append(faces[0].pixels)
                accepted.append(upload.key)
        progress(done, total)

    if not crops:
        reasons = "; ".join(f"{r.filename}: {r.reason}" for r in rejected)
        raise NoUsablePhoto(f"none of the {total} photos could be used ({reasons})")

    embeddings = pipe.embedder.embed(np.stack(crops))
    s = pipe.settings
    version = pipe.gallery_repo.commit(
        embeddings, [req.student_id] * len(crops), segment_id=req.job_id,
        model_name=s.model_name, detector=s.detector, metric=s.metric,
        threshold=s.match_threshold,
    )
    # The student record follows the gallery commit, so a failed commit leaves no half student.
    pipe.records.upsert_student(req.student_id, req.name, req.class_id)
    _keep_accepted_photos(pipe, req, accepted)
    # Written when the enrollment took effect; a redelivered task may note it twice.
    pipe.records.append_audit(AuditEntry(
        at=dt.datetime.now(dt.timezone.utc), actor=req.requested_by or "unknown",
        action="enroll", target=req.student_id,
        detail={"job_id": req.job_id, "photos": len(accepted), "class_id": req.class_id,
                "model_version": version},
    ))
    return EnrollmentResult(
        student_id=req.student_id, accepted_photos=len(crops), rejected=rejected,
        model_version=version,
    )


def _keep_accepted_photos(pipe: FacePipeline, req: EnrollmentRequest, accepted: list[str]) -> None:
    """File the used photos under the student, so erasing the student finds them.

    The uploads stay until the retention purge, so a redelivered task can still read them.
    """
    for key in accepted:
        pipe.blobs.put(student_photo_key(req.student_id, req.job_id, key), pipe.blobs.get(key))
