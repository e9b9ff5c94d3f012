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
import re
from collections.abc import Callable

import numpy as np
from pydantic import BaseModel, ConfigDict

from attendance.domain.errors import AppError, NotFound, StudentErased
from attendance.domain.keys import enrollment_job_of, student_photos_prefix
from attendance.domain.schemas import AuditEntry
from attendance.photos.images import decode_bgr
from attendance.services.enrollment import the_one_face
from attendance.services.pipeline import FacePipeline
from attendance.stores.gallery import (
    GalleryRepository,
    Manifest,
    Rewrite,
    segment_key,
    segment_pipeline,
)

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


class ReembedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_id: str
    requested_by: str | None = None
    requested_at: dt.datetime | None = None


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


def segment_id_for(pipeline: str, student_id: str) -> str:
    """The re-embedded segment of one student: one plain blob-key segment ([A-Za-z0-9._-])."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", pipeline).strip("-")
    return f"reembed-{slug}-{student_id}"


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
        seg["key"].rsplit("/", 1)[-1].removesuffix(".npz").split("-", 1)[0]
        for seg in manifest.all_segments()
        if segment_pipeline(seg) == pipe.pipeline_id
    }
    prefix = student_photos_prefix(student_id)
    return [
        key
        for key in sorted(pipe.blobs.list(prefix))
        # students/<id>/jobs/<job_id> are empty markers of enrollments, not photos
        if "/" not in key[len(prefix) :] and enrollment_job_of(key) not in current_jobs
    ]


def reembed(pipe: FacePipeline, req: ReembedRequest, progress: Progress) -> ReembedResult:
    asked_at = req.requested_at or dt.datetime.now(dt.UTC)
    pipeline = pipe.pipeline_id
    repo = pipe.gallery_repo
    manifest = repo.current_manifest()
    students = students_to_reembed(manifest, pipeline) if manifest else []
    version = manifest.version if manifest else 0
    total = len(students)
    progress(0, total)
    done_students, done_embeddings = 0, 0
    skipped: list[ReembedSkipped] = []
    s = pipe.settings
    for done, student_id in enumerate(students, start=1):
        seg_id = segment_id_for(pipeline, student_id)
        existing = manifest.segment_entry(segment_key(seg_id))
        if existing is not None:  # an earlier run (or this task, redelivered) did it
            done_students += 1
            done_embeddings += existing["count"]
            progress(done, total)
            continue
        crops, reasons = _crops(pipe, manifest, student_id)
        if crops is None:
            skipped.append(ReembedSkipped(student_id=student_id, reason=reasons[0]))
        elif not crops:
            skipped.append(
                ReembedSkipped(
                    student_id=student_id,
                    reason="no stored enrollment photo gave one face: " + "; ".join(reasons)
                    if reasons
                    else "no stored enrollment photo to re-embed",
                )
            )
        else:
            for reason in reasons:
                skipped.append(ReembedSkipped(student_id=student_id, reason=reason))
            embeddings = pipe.embedder.embed(np.stack(crops))
            try:
                version = repo.commit(
                    embeddings,
                    [student_id] * len(crops),
                    segment_id=seg_id,
                    pipeline=pipeline,
                    model_name=s.model_name,
                    detector=s.detector,
                    metric=s.metric,
                    threshold=s.match_threshold,
                    guard=(student_id, asked_at),
                )
            except StudentErased:
                log.info(
                    "job %s: a student was erased during the re-embedding; skipped", req.job_id
                )
                skipped.append(
                    ReembedSkipped(student_id=student_id, reason="erased during the re-embedding")
                )
            else:
                done_students += 1
                done_embeddings += len(crops)
        progress(done, total)

    log.info(
        "job %s: %d of %d students re-embedded with %s (%d embeddings)",
        req.job_id,
        done_students,
        total,
        pipeline,
        done_embeddings,
    )
    pipe.records.append_audit(
        AuditEntry(
            at=dt.datetime.now(dt.UTC),
            actor=req.requested_by or "unknown",
            action="reembed",
            target=pipeline,
            detail={
                "job_id": req.job_id,
                "students": done_students,
                "embeddings": done_embeddings,
                "skipped": len(skipped),
                "model_version": version,
            },
        )
    )
    return ReembedResult(
        pipeline=pipeline,
        students=done_students,
        embeddings=done_embeddings,
        skipped=skipped,
        model_version=version,
    )


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
        if face is not None:
            crops.append(face.pixels)
        else:
            reasons.append(f"{name}: {problem}")
    return crops, reasons


def drop_other_pipelines(repo: GalleryRepository, keep: str) -> tuple[int, int]:
    """Commit a version holding only the segments of pipeline ``keep``; delete the others and
    every older version (which name them). Returns (version, embeddings dropped). Run it once
    every student has been re-embedded: a student with embeddings of other pipelines only
    loses them (``students_to_reembed`` of GET /api/v1/model says how many there are)."""

    def only_kept(segments: list[dict]) -> Rewrite | None:
        dropped = [seg for seg in segments if segment_pipeline(seg) != keep]
        if not dropped:
            return None
        return Rewrite(
            kept=[seg for seg in segments if segment_pipeline(seg) == keep],
            drop=[seg["key"] for seg in dropped],
            removed=sum(seg["count"] for seg in dropped),
        )

    return repo.rewrite(only_kept, "the dropping of old pipelines")
