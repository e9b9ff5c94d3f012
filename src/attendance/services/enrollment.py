"""Enroll a student: one face per photo, embed them in one batch, commit a new gallery version.

Nothing is enrolled without the student's consent on record, and a withdrawal always wins over
an enrollment running at the same moment. The withdrawal records itself first and only then
erases the face data (attendance.services.erasure.erase_face_data); an enrollment checks the
consent before it starts, again just before it commits, and once more after its gallery swap.
So either the enrollment's last check sees the withdrawal, and it takes back what it added
(its segment, its filed photos, its uploads) and fails with consent_withdrawn; or that check
came before the withdrawal was recorded, and then so did the swap, and the erasure that follows
the withdrawal finds the enrollment's embeddings and photos and removes them. The erasure's
tombstone also refuses the gallery commit and the student record of an enrollment asked for
before it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from attendance.domain.consent import HOW_TO_GIVE
from attendance.domain.errors import (
    AppError,
    ConsentRequired,
    ConsentWithdrawn,
    NotFound,
    NoUsablePhoto,
    StudentErased,
    StudentExists,
)
from attendance.domain.keys import (
    enrollment_job_of,
    enrollment_marker_key,
    is_student_photo,
    segment_key,
    student_photo_key,
    student_photos_prefix,
    upload_prefix,
)
from attendance.domain.matching import normalise
from attendance.domain.schemas import (
    AuditEntry,
    Box,
    EnrollmentRequest,
    EnrollmentResult,
    Rejected,
)
from attendance.face.detect import ENROLL_MAX_TURN, ENROLL_MIN_SHARPNESS, DetectedFace
from attendance.photos.crops import jpeg_of_bgr, with_margin
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
    # What is filed for an upload of which only a part was used (a face in a class photo):
    # that part, never the whole photo with the rest of the class in it.
    cut: dict[str, bytes] = field(default_factory=dict)

    def keep(self, indices: np.ndarray) -> None:
        self.crops = [self.crops[i] for i in indices]
        self.keys = [self.keys[i] for i in indices]
        self.names = [self.names[i] for i in indices]

    def nothing_usable(self, total: int) -> NoUsablePhoto:
        reasons = "; ".join(f"{r.filename}: {r.reason}" for r in self.rejected)
        return NoUsablePhoto(f"none of the {total} photos could be used ({reasons})")


def enroll(pipe: FacePipeline, req: EnrollmentRequest, progress: Progress) -> EnrollmentResult:
    asked_at = req.requested_at or dt.datetime.now(dt.UTC)
    _require_consent(pipe, req)
    name = _enrolled_name(pipe, req, asked_at)
    try:
        photos = _one_face_each(pipe, req, asked_at, progress)
    except StudentErased:
        _require_consent(pipe, req)  # the withdrawal deleted the uploads: say so
        raise
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
    _require_consent(pipe, req)
    new_student = pipe.records.get_student(req.student_id) is None
    try:
        version = _commit(pipe, req, name, embeddings[keep], photos.keys, asked_at, photos.cut)
        if not _consent_holds(pipe, req):
            _take_back(pipe, req)
            raise _withdrawn(req)
        # The last step: written when and only when the enrollment took effect (a redelivered
        # task may note it twice). If it fails, the enrollment is undone below.
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
    except StudentErased:
        _require_consent(pipe, req)  # a withdrawal's tombstone: say that it was withdrawn
        raise
    except ConsentWithdrawn:
        raise
    except Exception:
        # The job is about to be reported failed: what this enrollment stored must not stay.
        _undo(pipe, req, new_student)
        raise
    return EnrollmentResult(
        student_id=req.student_id,
        accepted_photos=len(photos.crops),
        rejected=photos.rejected,
        model_version=version,
    )


def _withdrawn(req: EnrollmentRequest) -> ConsentWithdrawn:
    return ConsentWithdrawn(
        f"the consent to hold the face data of {req.student_id!r} was withdrawn after this "
        "enrollment was asked for; nothing of it was kept"
    )


def _consent_holds(pipe: FacePipeline, req: EnrollmentRequest) -> bool:
    consent = pipe.records.get_consent(req.student_id)
    return consent is not None and consent.active


def _require_consent(pipe: FacePipeline, req: EnrollmentRequest) -> None:
    """ConsentRequired or ConsentWithdrawn unless the student's consent is on record;
    StudentErased if the student was erased (consent and all) since it was asked for."""
    consent = pipe.records.get_consent(req.student_id)
    if consent is None:
        asked_at = req.requested_at or dt.datetime.now(dt.UTC)
        if pipe.records.erased_since([req.student_id], asked_at):
            raise StudentErased(erased_message(req.student_id))
        raise ConsentRequired(
            f"no consent to hold the face data of {req.student_id!r} is on record; {HOW_TO_GIVE}"
        )
    if not consent.active:
        raise _withdrawn(req)


def _filed_by(pipe: FacePipeline, req: EnrollmentRequest) -> list[str]:
    """The photos this enrollment filed under the student."""
    return [
        key
        for key in pipe.blobs.list(student_photos_prefix(req.student_id))
        if is_student_photo(key, req.student_id) and enrollment_job_of(key) == req.job_id
    ]


def _take_back(pipe: FacePipeline, req: EnrollmentRequest) -> None:
    """Remove what this enrollment added: its segment from the gallery, the photos it filed
    under the student, and its uploads."""
    mine = segment_key(req.job_id)
    pipe.gallery_repo.rewrite(lambda entry, _rows: entry["key"] != mine, "a withdrawn enrollment")
    for key in _filed_by(pipe, req) + pipe.blobs.list(upload_prefix(req.job_id)):
        pipe.blobs.delete(key)
    pipe.blobs.delete(enrollment_marker_key(req.student_id, req.job_id))
    log.info("job %s: consent was withdrawn meanwhile; the enrollment was taken back", req.job_id)


def _undo(pipe: FacePipeline, req: EnrollmentRequest, new_student: bool) -> None:
    """Take back an enrollment that failed part way: its segment (in the gallery or not yet),
    the photos it filed and, if it created the student, the student record. The uploads stay
    for a retry. A failure here is logged and the enrollment's own error is what is raised."""
    mine = segment_key(req.job_id)
    try:
        pipe.gallery_repo.rewrite(lambda entry, _rows: entry["key"] != mine, "a failed enrollment")
        manifest = pipe.gallery_repo.current_manifest()
        if manifest is None or not manifest.has_segment(mine):
            pipe.blobs.delete(mine)
        for key in _filed_by(pipe, req):
            pipe.blobs.delete(key)
        if new_student and (
            manifest is None or req.student_id not in manifest.embeddings_per_student()
        ):
            pipe.records.delete_student(req.student_id)
    except Exception:
        log.exception("job %s: the failed enrollment could not be fully taken back", req.job_id)
        return
    log.info("job %s: the enrollment failed part way and was taken back", req.job_id)


def _one_face_each(
    pipe: FacePipeline, req: EnrollmentRequest, asked_at: dt.datetime, progress: Progress
) -> _Photos:
    """Detect the faces of every photo; keep the photos with one face good enough to enroll."""
    photos = _Photos()
    total = len(req.photos)
    for done, upload in enumerate(req.photos, start=1):
        try:
            bgr = decode_bgr(pipe.blobs.get(upload.key))
            faces = pipe.detector.detect(bgr)
            if upload.box is not None:
                faces = _at(faces, upload.box)
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
                if upload.box is not None:
                    photos.cut[upload.key] = jpeg_of_bgr(_cropped(bgr, upload.box))
        progress(done, total)
    return photos


def _commit(
    pipe: FacePipeline,
    req: EnrollmentRequest,
    name: str,
    embeddings: np.ndarray,
    accepted: list[str],
    asked_at: dt.datetime,
    cut: dict[str, bytes],
) -> int:
    """File the accepted photos, commit their embeddings and the student record; return the
    gallery version. Nothing stays behind if the student was erased since ``asked_at``."""
    # Photos first: if anything below fails or the student is erased meanwhile, what was filed
    # is deleted again (or found by the erasure, which lists the student's photos after it has
    # left its tombstone).
    try:
        filed = _keep_accepted_photos(pipe, req, accepted, cut)
    except NotFound:
        # An erasure (of the student or of their face data) deleted the uploads meanwhile.
        for key in _filed_by(pipe, req):
            pipe.blobs.delete(key)
        if pipe.records.erased_since([req.student_id], asked_at):
            raise StudentErased(erased_message(req.student_id)) from None
        raise
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
    pipe: FacePipeline, req: EnrollmentRequest, accepted: list[str], cut: dict[str, bytes]
) -> list[str]:
    """File the used photos (of a part used, that part: ``cut``) under the student, so erasing
    the student finds them.

    The uploads stay until the retention purge, so a redelivered task can still read them.
    """
    filed = []
    for key in accepted:
        target = student_photo_key(req.student_id, req.job_id, key)
        if key in cut:
            pipe.blobs.put(target, cut[key], "image/jpeg")
        else:
            pipe.blobs.put(target, pipe.blobs.get(key))
        filed.append(target)
    return filed


# What is filed of a face learnt from a class photo: the face and some of the head around it.
LEARN_MARGIN = 0.4
# How much a face found must overlap the box asked for (intersection over union) to be it.
SAME_FACE_IOU = 0.5


def _at(faces: Sequence[DetectedFace], box: Box) -> list[DetectedFace]:
    """The face the box names, among those found in the whole photo ([] if none is).

    The photo is searched whole, as the recognition that boxed the face searched it: the
    detector places the landmarks of a large face differently on a crop than on the whole
    photo, and the embedding aligned by them moves far from the one that was matched."""

    def overlap(face: DetectedFace) -> float:
        a = face.box
        w = min(a.x + a.w, box.x + box.w) - max(a.x, box.x)
        h = min(a.y + a.h, box.y + box.h) - max(a.y, box.y)
        inter = max(0, w) * max(0, h)
        union = a.w * a.h + box.w * box.h - inter
        return inter / union if union > 0 else 0.0

    best = max(faces, key=overlap, default=None)
    return [best] if best is not None and overlap(best) >= SAME_FACE_IOU else []


def _cropped(bgr: np.ndarray, box: Box) -> np.ndarray:
    """The box and a margin around it."""
    height, width = bgr.shape[:2]
    left, top, right, bottom = with_margin(box, width, height, LEARN_MARGIN)
    return np.ascontiguousarray(bgr[top:bottom, left:right])
