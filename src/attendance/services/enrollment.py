"""Enroll a student: one face per photo, embed them in one batch, commit a new gallery version."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from attendance.domain.errors import AppError, NotFound, NoUsablePhoto, StudentErased, StudentExists
from attendance.domain.keys import student_photo_key
from attendance.domain.matching import normalise
from attendance.domain.schemas import AuditEntry, EnrollmentRequest, EnrollmentResult, Rejected
from attendance.face.detect import ENROLL_MAX_TURN, ENROLL_MIN_SHARPNESS, DetectedFace
from attendance.photos.images import decode_bgr
from attendance.services.pipeline import FacePipeline
from attendance.stores.records import erased_message

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

INCONSISTENT = (
    "does not look like the other photos of this student (is it the same person, "
    "and is the face clear?)"
)


@dataclass
class _Photos:
    """The faces an enrollment may use so far (one per accepted photo) and the photos refused."""

    crops: list[np.ndarray] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)  # the uploads the crops come from
    names: list[str] = field(default_factory=list)  # their file names
    rejected: list[Rejected] = field(default_factory=list)

    def keep(self, indices: np.ndarray) -> None:
        self.crops = [self.crops[i] for i in indices]
        self.keys = [self.keys[i] for i in indices]
        self.names = [self.names[i] for i in indices]

    def nothing_usable(self, total: int) -> NoUsablePhoto:
        reasons = "; ".join(f"{r.filename}: {r.reason}" for r in self.rejected)
        return NoUsablePhoto(f"none of the {total} photos could be used ({reasons})")


def enroll(pipe: FacePipeline, req: EnrollmentRequest, progress: Progress) -> EnrollmentResult:
    asked_at = req.requested_at or dt.datetime.now(dt.UTC)
    name = _enrolled_name(pipe, req, asked_at)
    photos = _one_face_each(pipe, req, asked_at, progress)
    if not photos.crops:
        raise photos.nothing_usable(len(req.photos))
    embeddings = normalise(pipe.embedder.embed(np.stack(photos.crops)))
    consistent = _consistent(pipe, req.student_id, embeddings)
    for i in np.flatnonzero(~consistent):
        photos.rejected.append(Rejected(filename=photos.names[i], reason=INCONSISTENT))
    if not consistent.any():
        raise photos.nothing_usable(len(req.photos))
    keep = np.flatnonzero(consistent)
    photos.keep(keep)
    version = _commit(pipe, req, name, embeddings[keep], photos.keys, asked_at)
    # Written when the enrollment took effect; a redelivered task may note it twice.
    pipe.records.append_audit(
        AuditEntry(
            at=dt.datetime.now(dt.UTC),
            actor=req.requested_by or "unknown",
            action="enroll" if req.mode == "create" else "add_photos",
            target=req.student_id,
            detail={
                "job_id": req.job_id,
                "photos": len(photos.keys),
                "class_id": req.class_id,
                "model_version": version,
            },
        )
    )
    return EnrollmentResult(
        student_id=req.student_id,
        accepted_photos=len(photos.crops),
        rejected=photos.rejected,
        model_version=version,
    )


def _one_face_each(
    pipe: FacePipeline, req: EnrollmentRequest, asked_at: dt.datetime, progress: Progress
) -> _Photos:
    """Detect the faces of every photo; keep the photos with one face good enough to enroll."""
    photos = _Photos()
    total = len(req.photos)
    for done, upload in enumerate(req.photos, start=1):
        try:
            faces = pipe.detector.detect(decode_bgr(pipe.blobs.get(upload.key)))
        except NotFound:
            # The erasure of the student deletes the uploads of every enrollment asked for them.
            if pipe.records.erased_since([req.student_id], asked_at):
                raise StudentErased(erased_message(req.student_id)) from None
            raise
        except AppError:
            raise
        except Exception as exc:  # a photo the decoder or detector cannot handle
            log.warning("job %s: %s unreadable: %s", req.job_id, upload.filename, exc)
            photos.rejected.append(
                Rejected(filename=upload.filename, reason="not a readable image")
            )
        else:
            face, problem = the_one_face(faces, pipe.settings.min_face_px)
            if face is not None:
                problem = not_enrollable(pipe, face)
            if problem is not None:
                photos.rejected.append(Rejected(filename=upload.filename, reason=problem))
            elif face is not None and face.pixels is not None:  # the one face is identifiable
                photos.crops.append(face.pixels)
                photos.keys.append(upload.key)
                photos.names.append(upload.filename)
        progress(done, total)
    return photos


def _commit(
    pipe: FacePipeline,
    req: EnrollmentRequest,
    name: str,
    embeddings: np.ndarray,
    accepted: list[str],
    asked_at: dt.datetime,
) -> int:
    """File the accepted photos, commit their embeddings and the student record; return the
    gallery version. Nothing stays behind if the student was erased since ``asked_at``."""
    # Photos first: if anything below fails or the student is erased meanwhile, what was filed
    # is deleted again (or found by the erasure, which lists the student's photos after it has
    # left its tombstone).
    filed = _keep_accepted_photos(pipe, req, accepted)
    s = pipe.settings
    try:
        version = pipe.gallery_repo.commit(
            embeddings,
            [req.student_id] * len(embeddings),
            segment_id=req.job_id,
            pipeline=pipe.pipeline_id,
            model_name=s.model_name,
            detector=s.detector,
            metric=s.metric,
            threshold=s.match_threshold,
            guard=(req.student_id, asked_at),
        )
        # The student record follows the gallery commit, so a failed commit leaves no half
        # student; both refuse a student erased since the enrollment was asked for.
        pipe.records.upsert_student(req.student_id, name, req.class_id, not_erased_since=asked_at)
    except StudentErased:
        for key in filed:
            pipe.blobs.delete(key)
        log.info("job %s: the student was erased after this enrollment was asked for", req.job_id)
        raise
    return version


def the_one_face(
    faces: Sequence[DetectedFace], min_face_px: int
) -> tuple[DetectedFace | None, str | None]:
    """(the photo's one clear face, None), or (None, why there is none) in plain words. Faces
    too small to recognise (in the background) could not be enrolled anyway, so they do not
    count: beside them, the one clear face is the student's."""
    clear = [f for f in faces if f.identifiable]
    if len(clear) == 1:
        return clear[0], None
    if not faces:
        return None, "no face found"
    if not clear:
        return None, (
            f"the face is too small to recognise: a photo in which the face is at "
            f"least {min_face_px} pixels wide is needed"
        )
    return None, f"{len(clear)} faces found; an enrollment photo must show one face"


def not_enrollable(pipe: FacePipeline, face: DetectedFace) -> str | None:
    """Why a clear face is still not good enough to enroll, in plain words; None if it is."""
    s = pipe.settings
    if pipe.detector.width(face) < s.enroll_min_face_px:
        return (
            f"the face is too small for an enrollment photo: a photo in which the face is "
            f"at least {s.enroll_min_face_px} pixels wide is needed"
        )
    if face.confidence < s.enroll_min_confidence:
        return "the face is not clear enough (turned away, blurred or covered)"
    if abs(face.turn) > ENROLL_MAX_TURN:
        return "the face is turned away: a photo facing the camera is needed"
    if face.sharpness < ENROLL_MIN_SHARPNESS:
        return "the face is blurred: a sharper photo is needed"
    return None


def _consistent(pipe: FacePipeline, student_id: str, embeddings: np.ndarray) -> np.ndarray:
    """Which of the new embeddings look like the student's other photos (this enrollment's
    others and those already enrolled): the second nearest of them, when there are two or
    more, or the one there is, within enroll_consistency_distance. A lone first photo is
    accepted as it is."""
    pipe.gallery.refresh()
    existing = pipe.gallery.candidates({student_id}).embeddings
    everything = np.concatenate([embeddings, existing]) if len(existing) else embeddings
    limit = pipe.settings.enroll_consistency_distance
    ok = np.ones(len(embeddings), dtype=bool)
    for i, vector in enumerate(embeddings):
        distances = np.delete(1.0 - everything @ vector, i)
        if len(distances) == 0:
            continue
        ok[i] = np.sort(distances)[min(2, len(distances)) - 1] <= limit
    return ok


def _enrolled_name(pipe: FacePipeline, req: EnrollmentRequest, asked_at: dt.datetime) -> str:
    """The name the student is to have: an id belongs to one person (the API checks this when
    it accepts the request; this checks it again for two requests racing)."""
    existing = pipe.records.get_student(req.student_id)
    if req.mode == "add":
        if existing is None:
            if pipe.records.erased_since([req.student_id], asked_at):
                raise StudentErased(erased_message(req.student_id))
            raise NotFound(
                f"no student {req.student_id!r} to add photos to", code="student_not_found"
            )
        return existing.name
    if req.name is None:
        raise AppError("an enrollment of a new student needs a name", code="missing_name")
    if existing is not None and existing.name != req.name:
        raise StudentExists(
            f"student id {req.student_id!r} belongs to another student already; add photos "
            "to them or rename them with a request of its own"
        )
    return req.name


def _keep_accepted_photos(
    pipe: FacePipeline, req: EnrollmentRequest, accepted: list[str]
) -> list[str]:
    """File the used photos under the student, so erasing the student finds them.

    The uploads stay until the retention purge, so a redelivered task can still read them.
    """
    filed = []
    for key in accepted:
        target = student_photo_key(req.student_id, req.job_id, key)
        pipe.blobs.put(target, pipe.blobs.get(key))
        filed.append(target)
    return filed
