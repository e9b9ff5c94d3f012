"""Re-embedding: the students whose embeddings come from another pipeline (an older detector,
alignment or model) get new ones from their stored enrollment photos, made by the current one.

Embeddings of different pipelines are never compared (src/attendance/stores/gallery.py), so after the detector
changes a student enrolled before is not recognised until this has run. For every such student
the photos under ``students/<id>/`` whose enrollment was embedded by another pipeline are
detected and embedded again and committed as one segment, ``reembed-<pipeline>-<student>``: a
redelivered task finds it committed and adds nothing twice. The old-pipeline segments stay
(never matched; switching the detector back makes them live again) until the admin removes
them with drop_other_pipelines (attendance-drop-old-pipelines; README, "Upgrading the detector
or the model").

A student erased while this runs does not come back: their commit carries the erasure guard
(StudentErased, and nothing left behind, if erased since the re-embedding was asked for), and a
photo the erasure deleted under it skips the student.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

import numpy as np
from pydantic import BaseModel, ConfigDict

from attendance.domain.errors import AppError, NotFound, StudentErased
from attendance.domain.keys import (
    enrollment_job_of,
    is_student_photo,
    reembed_segment_id,
    segment_job_of,
    segment_key,
    student_photos_prefix,
)
from attendance.domain.schemas import AuditEntry, ReembedRequest
from attendance.photos.images import decode_bgr
from attendance.services.enrollment import the_one_face
from attendance.services.pipeline import FacePipeline
from attendance.stores.gallery import (
    GalleryRepository,
    Manifest,
    Segment,
    SegmentChoice,
    segment_pipeline,
)

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


class ReembedSkipped(BaseModel):
    model_config = ConfigDict(extra="forbid")

    student_id: str
    reason: str


class ReembedResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pipeline: str
    students: int  # students with embeddings of the current pipeline made by this job
    embeddings: int  # embeddings those students got
    skipped: list[ReembedSkipped]
    model_version: int


def students_to_reembed(manifest: Manifest, pipeline: str) -> list[str]:
    """Students with embeddings of another pipeline than ``pipeline``, in id order."""
    return sorted(
        {
            sid
            for p, counts in manifest.embeddings_by_pipeline().items()
            if p != pipeline
            for sid, n in counts.items()
            if n
        }
    )


def _photos_to_reembed(pipe: FacePipeline, manifest: Manifest, student_id: str) -> list[str]:
    """The student's stored enrollment photos whose enrollment was not embedded by the current
    pipeline (the photos of enrollments made by it already are in the gallery as they are)."""
    current_jobs = {
        segment_job_of(seg["key"])
        for seg in manifest.all_segments()
        if segment_pipeline(seg) == pipe.pipeline_id
    }
    return [
        key
        for key in sorted(pipe.blobs.list(student_photos_prefix(student_id)))
        if is_student_photo(key, student_id) and enrollment_job_of(key) not in current_jobs
    ]


def reembed(pipe: FacePipeline, req: ReembedRequest, progress: Progress) -> ReembedResult:
    result = ReembedResult(
        pipeline=pipe.pipeline_id, students=0, embeddings=0, skipped=[], model_version=0
    )
    manifest = pipe.gallery_repo.current_manifest()
    if manifest is None:
        progress(0, 0)
    else:
        result.model_version = manifest.version
        students = students_to_reembed(manifest, pipe.pipeline_id)
        progress(0, len(students))
        asked_at = req.requested_at or dt.datetime.now(dt.UTC)
        for done, student_id in enumerate(students, start=1):
            _reembed_student(pipe, req, manifest, student_id, asked_at, result)
            progress(done, len(students))
        log.info(
            "job %s: %d of %d students re-embedded with %s (%d embeddings)",
            req.job_id,
            result.students,
            len(students),
            pipe.pipeline_id,
            result.embeddings,
        )
    pipe.records.append_audit(
        AuditEntry(
            at=dt.datetime.now(dt.UTC),
            actor=req.requested_by or "unknown",
            action="reembed",
            target=pipe.pipeline_id,
            detail={
                "job_id": req.job_id,
                "students": result.students,
                "embeddings": result.embeddings,
                "skipped": len(result.skipped),
                "model_version": result.model_version,
            },
        )
    )
    return result


def _reembed_student(
    pipe: FacePipeline,
    req: ReembedRequest,
    manifest: Manifest,
    student_id: str,
    asked_at: dt.datetime,
    result: ReembedResult,
) -> None:
    """Commit the student's segment of the current pipeline; add what happened to ``result``."""

    def skip(reason: str) -> None:
        result.skipped.append(ReembedSkipped(student_id=student_id, reason=reason))

    seg_id = reembed_segment_id(pipe.pipeline_id, student_id)
    existing = manifest.segment_entry(segment_key(seg_id))
    if existing is not None:  # an earlier run (or this task, redelivered) did it
        result.students += 1
        result.embeddings += existing["count"]
        return
    crops, reasons = _crops(pipe, manifest, student_id)
    if crops is None:
        skip(reasons[0])
        return
    if not crops:
        skip(
            "no stored enrollment photo gave one face: " + "; ".join(reasons)
            if reasons
            else "no stored enrollment photo to re-embed"
        )
        return
    for reason in reasons:
        skip(reason)
    s = pipe.settings
    try:
        result.model_version = pipe.gallery_repo.commit(
            pipe.embedder.embed(np.stack(crops)),
            [student_id] * len(crops),
            segment_id=seg_id,
            pipeline=pipe.pipeline_id,
            model_name=s.model_name,
            detector=s.detector,
            metric=s.metric,
            threshold=s.match_threshold,
            guard=(student_id, asked_at),
        )
    except StudentErased:
        log.info("job %s: a student was erased during the re-embedding; skipped", req.job_id)
        skip("erased during the re-embedding")
        return
    result.students += 1
    result.embeddings += len(crops)


def _crops(
    pipe: FacePipeline, manifest: Manifest, student_id: str
) -> tuple[list[np.ndarray] | None, list[str]]:
    """The one face of each photo to re-embed, and why the others were left out; (None,
    [reason]) when the student is being erased (a photo went away under us)."""
    crops: list[np.ndarray] = []
    reasons: list[str] = []
    for key in _photos_to_reembed(pipe, manifest, student_id):
        name = key.rsplit("/", 1)[-1]
        try:
            faces = pipe.detector.detect(decode_bgr(pipe.blobs.get(key)))
        except NotFound:
            # Only an erasure deletes a student's enrollment photos.
            return None, ["erased during the re-embedding"]
        except AppError:
            raise
        except Exception as exc:  # a photo the decoder or detector cannot handle
            log.warning("re-embedding: a photo of a student is unreadable: %s", type(exc).__name__)
            reasons.append(f"{name}: not a readable image")
            continue
        face, problem = the_one_face(faces, pipe.settings.min_face_px)
        if face is not None and face.pixels is not None:  # the one face is identifiable
            crops.append(face.pixels)
        else:
            reasons.append(f"{name}: {problem}")
    return crops, reasons


def drop_other_pipelines(repo: GalleryRepository, keep: str) -> tuple[int, int]:
    """Commit a version holding only the segments of pipeline ``keep``; delete the others and
    every older version (which name them). Returns (version, embeddings dropped). Run it once
    every student has been re-embedded: a student with embeddings of other pipelines only
    loses them (``students_to_reembed`` of GET /api/v1/model says how many there are)."""

    def of_kept_pipeline(entry: dict, rows: Callable[[], Segment]) -> SegmentChoice:
        return segment_pipeline(entry) == keep

    return repo.rewrite(of_kept_pipeline, "the dropping of old pipelines")
