"""Settling one face of a class photo: a teacher says whose face it is, or that its match was
wrong; and the face's picture, cut from the stored photo.

Assigning a face to a student marks them present in the job's register (its class, date and
period) from that face, as a person's decision (source "manual"); a late mark stays late, with
the face as its evidence. Rejecting a face undoes what its match did and nothing else: a mark
whose evidence is this very face moves to the student's best other face in the same job (still a
face's mark) or, with none, becomes absent by hand; a mark from anything else (another job, a
teacher's hand) stays. Assigning a face to someone else first rejects it for whoever it counted
for.

Once the register is signed off only an admin settles its faces, each change a correction. The
job's stored result records each settlement (``outcome`` assigned or rejected, ``settled_by``),
so the photo shows it when read again; the register's write comes first, so a refused one
leaves the result as it was.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from attendance.domain.errors import AppError, MarkChanged, NotFound
from attendance.domain.keys import upload_prefix
from attendance.domain.schemas import (
    AttendanceRecord,
    AuditEntry,
    FaceMatch,
    JobView,
    RecognitionResult,
    RegisterRow,
    Upload,
)
from attendance.photos.crops import face_crop
from attendance.services.register import enrolled_student, locked_for, row_of, write_mark
from attendance.stores.blob import BlobStore
from attendance.stores.jobs import JobStore
from attendance.stores.records import Expected, RecordsStore

REJECTED_NOTE = "the face match was rejected"
# How often a reject reads the mark again when another write changed it in between.
_REJECT_ATTEMPTS = 5


@dataclass(frozen=True)
class Settled:
    """The register's row of the student concerned after the change (None: the face matched
    nobody and was rejected) and the face as the job's result now holds it."""

    row: RegisterRow | None
    face: FaceMatch


@dataclass(frozen=True)
class _Target:
    """The face being settled, and the job's result it is part of."""

    job: JobView
    result: RecognitionResult
    photo: int
    face: int

    @property
    def match(self) -> FaceMatch:
        return self.result.photos[self.photo].faces[self.face]

    def is_evidence_of(self, mark: AttendanceRecord | None) -> bool:
        return (
            mark is not None
            and mark.job_id == self.job.job_id
            and (mark.photo, mark.face) == (self.photo, self.face)
        )


def recognition_face(job: JobView, photo: str, face: str) -> tuple[RecognitionResult, int, int]:
    """The job's result and the face's indices, checked: a finished recognition (409
    job_not_finished), a photo of it (404 photo_not_found), a face of that photo (404
    face_not_found)."""
    if job.kind != "recognition":
        raise AppError(
            f"job {job.job_id} is an {job.kind}, not a recognition: it has no faces to settle",
            code="job_not_finished",
            status=409,
        )
    if job.state != "succeeded" or job.result is None:
        raise AppError(
            f"job {job.job_id} is {job.state}: its faces can be settled once it has succeeded",
            code="job_not_finished",
            status=409,
        )
    result = RecognitionResult.model_validate(job.result)
    n = _index(photo, len(result.photos))
    if n is None:
        raise NotFound(f"job {job.job_id} has no photo {photo[:16]!r}", code="photo_not_found")
    k = _index(face, len(result.photos[n].faces))
    if k is None:
        raise NotFound(
            f"photo {n} of job {job.job_id} has no face {face[:16]!r}", code="face_not_found"
        )
    return result, n, k


def _index(raw: str, size: int) -> int | None:
    # isascii: str.isdigit() is also true of "²", which int() refuses.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 6:
        return None
    value = int(raw)
    return value if value < size else None


def settle(
    records: RecordsStore,
    jobs: JobStore,
    job: JobView,
    photo: str,
    face: str,
    student_id: str | None,
    *,
    actor: str,
    is_admin: bool,
    threshold: float | None = None,
) -> Settled:
    """Assign the face to ``student_id``, or reject its match (None); see the module."""
    result, n, k = recognition_face(job, photo, face)
    target = _Target(job, result, n, k)
    if student_id is not None:
        enrolled_student(records, result.class_id, student_id)
    locked = locked_for(records, result.class_id, result.date, result.period, is_admin)
    now = dt.datetime.now(dt.UTC)
    earlier = target.match.student_id
    row = None
    if earlier is not None and earlier != student_id:
        row = _reject(records, target, earlier, actor, is_admin, locked, now, threshold)
    elif earlier is None and student_id is None:
        _audit_reject(records, target, None, None, None, actor, locked, now)
    if student_id is not None:
        row = _assign(records, target, student_id, actor, is_admin, locked, now, threshold)
    settled = target.match.model_copy(
        update={
            "student_id": student_id,
            "name": None,
            # Its distance is to the student it matched: kept only if that is whose it is.
            "distance": target.match.distance if student_id == earlier else None,
            "outcome": "assigned" if student_id is not None else "rejected",
            "settled_by": actor,
        }
    )

    def record_in(stored: JobView) -> None:
        assert stored.result is not None  # a succeeded job keeps its result
        stored.result["photos"][n]["faces"][k] = settled.model_dump(mode="json")

    jobs.update_result(job.job_id, record_in)
    return Settled(row=row, face=settled)


def _assign(
    records: RecordsStore,
    target: _Target,
    student_id: str,
    actor: str,
    is_admin: bool,
    locked: bool,
    now: dt.datetime,
    threshold: float | None,
) -> RegisterRow:
    result, match = target.result, target.match
    student = enrolled_student(records, result.class_id, student_id)
    earlier = records.get_mark(result.class_id, result.date, result.period, student_id)
    late = earlier is not None and earlier.status == "late"
    record = AttendanceRecord(
        class_id=result.class_id,
        date=result.date,
        period=result.period,
        student_id=student_id,
        name=student.name,
        first_seen_at=earlier.first_seen_at if earlier is not None else now,
        status="late" if late else "present",
        source="manual",
        marked_by=actor,
        marked_at=now,
        note=earlier.note if late and earlier is not None else None,
        job_id=target.job.job_id,
        photo=target.photo,
        face=target.face,
        box=match.box,
        distance=match.distance if match.student_id == student_id else None,
        captured_at=result.photos[target.photo].captured_at,
    )
    replaced, corrected = write_mark(records, record, locked, is_admin)
    records.append_audit(
        AuditEntry(
            at=now,
            actor=actor,
            action="assign_face",
            target=student_id,
            detail={
                **_where(target),
                "status_before": None if replaced is None else replaced.status,
                "status_after": record.status,
                "correction": corrected,
            },
        )
    )
    return row_of(student_id, student.name, record, threshold)


def _reject(
    records: RecordsStore,
    target: _Target,
    student_id: str,
    actor: str,
    is_admin: bool,
    locked: bool,
    now: dt.datetime,
    threshold: float | None,
) -> RegisterRow | None:
    """Undo what this face did for ``student_id``; their row after (None: no longer a
    student of the class). What is written is decided from the mark as read, and written only
    over that mark: a teacher's mark made in between is read again and decided on, never
    overwritten unseen."""
    result = target.result
    student = records.get_student(student_id)
    for attempt in range(_REJECT_ATTEMPTS):
        mark = records.get_mark(result.class_id, result.date, result.period, student_id)
        if not target.is_evidence_of(mark):
            _audit_reject(records, target, student_id, mark, mark, actor, locked, now)
            break
        assert mark is not None
        after = _without_this_face(target, mark, student_id, actor, now)
        try:
            _, corrected = write_mark(records, after, locked, is_admin, Expected(mark))
        except MarkChanged:
            if attempt == _REJECT_ATTEMPTS - 1:
                raise
            continue
        _audit_reject(records, target, student_id, mark, after, actor, corrected, now)
        mark = after
        break
    if student is None or result.class_id not in student.class_ids:
        return None
    return row_of(student_id, student.name, mark, threshold)


def _without_this_face(
    target: _Target, mark: AttendanceRecord, student_id: str, actor: str, now: dt.datetime
) -> AttendanceRecord:
    """The mark once this face no longer counts: on the student's best other face in the job,
    else absent by hand."""
    other = _best_other_face(target, student_id)
    if other is not None:
        i, j, face = other
        return mark.model_copy(
            update={
                "source": "face",
                "marked_by": None,
                "marked_at": None,
                "photo": i,
                "face": j,
                "box": face.box,
                "distance": face.distance,
                "captured_at": target.result.photos[i].captured_at,
            }
        )
    return mark.model_copy(
        update={
            "status": "absent",
            "source": "manual",
            "marked_by": actor,
            "marked_at": now,
            "note": REJECTED_NOTE,
            "job_id": None,
            "photo": None,
            "face": None,
            "box": None,
            "distance": None,
            "captured_at": None,
        }
    )


def _best_other_face(target: _Target, student_id: str) -> tuple[int, int, FaceMatch] | None:
    """The student's nearest face in the job other than this one, among those the model
    matched to them."""
    found = [
        (face.distance, i, j, face)
        for i, photo in enumerate(target.result.photos)
        for j, face in enumerate(photo.faces)
        if (i, j) != (target.photo, target.face)
        and face.outcome == "recognised"
        and face.student_id == student_id
        and face.distance is not None
    ]
    if not found:
        return None
    _, i, j, face = min(found, key=lambda f: (f[0], f[1], f[2]))
    return i, j, face


def _where(target: _Target) -> dict:
    result = target.result
    return {
        "job_id": target.job.job_id,
        "photo": target.photo,
        "face": target.face,
        "class_id": result.class_id,
        "date": result.date.isoformat(),
        "period": result.period,
    }


def _audit_reject(
    records: RecordsStore,
    target: _Target,
    student_id: str | None,
    before: AttendanceRecord | None,
    after: AttendanceRecord | None,
    actor: str,
    corrected: bool,
    now: dt.datetime,
) -> None:
    records.append_audit(
        AuditEntry(
            at=now,
            actor=actor,
            action="reject_face",
            target=student_id or target.job.job_id,
            detail={
                **_where(target),
                "student_id": student_id,
                "status_before": None if before is None else before.status,
                "status_after": None if after is None else after.status,
                "evidence_moved_to": (
                    [after.photo, after.face]
                    if after is not None and after is not before and after.photo is not None
                    else None
                ),
                "correction": corrected,
            },
        )
    )


def stored_photo(blobs: BlobStore, job: JobView, photo: int) -> str:
    """The key of the job's upload of that photo; 410 photo_expired once the retention purge
    has deleted it."""
    prefix = f"{upload_prefix(job.job_id)}{photo:03d}."
    for key in blobs.list(upload_prefix(job.job_id)):
        if key.startswith(prefix):
            return key
    raise AppError(
        f"photo {photo} of job {job.job_id} was deleted by the retention policy",
        code="photo_expired",
        status=410,
    )


def face_image(blobs: BlobStore, job: JobView, photo: str, face: str) -> bytes:
    """A JPEG of the face, cut from the job's stored upload."""
    result, n, k = recognition_face(job, photo, face)
    key = stored_photo(blobs, job, n)
    try:
        data = blobs.get(key)
    except NotFound:
        raise AppError(
            f"photo {n} of job {job.job_id} was deleted by the retention policy",
            code="photo_expired",
            status=410,
        ) from None
    return face_crop(data, result.photos[n].faces[k].box)


def learn_upload(blobs: BlobStore, job: JobView, photo: str, face: str) -> Upload:
    """The job's stored photo with the face's box: what an enrollment of that face reads."""
    result, n, k = recognition_face(job, photo, face)
    found = result.photos[n]
    return Upload(
        key=stored_photo(blobs, job, n),
        filename=found.filename,
        box=found.faces[k].box,
        captured_at=found.captured_at,
    )
