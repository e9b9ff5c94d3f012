"""Erasing a student everywhere: embeddings, enrollment photos, records and, on request,
attendance with the class photos that showed them.

A tombstone (student id, erased_at) is written first. Every later write that could bring the
student back checks it in the same transaction (attendance.stores.records), so a recognition or
an enrollment asked for before the erasure, still queued or running, cannot undo it; one asked
for afterwards (a new enrollment) is allowed. Everything below runs after the tombstone, so it sees whatever
such work wrote before it. The gallery gets a new version without the student's embeddings; the
segments that held them, and every older manifest and snapshot (which name the student), are
then deleted, so no earlier version can bring them back; so are the segments no version lists
that hold them (an enrollment that failed after writing its own) and the packed segments no
version can list any more (an attempt that lost its race and whose writer died before deleting
them). Erasing again removes whatever is left.

erase_face_data does the same to the student's face alone (embeddings, enrollment photos and
their uploads) when their consent is withdrawn or their template expires: the student, their
classes and their attendance stay.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from attendance.domain.errors import NotFound
from attendance.domain.keys import (
    GALLERY_SEGMENTS,
    annotated_prefix,
    enrollment_job_of,
    packed_version,
    student_photos_prefix,
    upload_prefix,
)
from attendance.stores.blob import BlobStore
from attendance.stores.gallery import GalleryRepository, Segment, SegmentChoice
from attendance.stores.records import RecordsStore

log = logging.getLogger(__name__)

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _remove_from_gallery(repo: GalleryRepository, student_id: str) -> tuple[int, int]:
    """Commit a version without the student; return (version, embeddings removed)."""

    def other_students(entry: dict, rows: Callable[[], Segment]) -> SegmentChoice:
        if student_id not in entry["students"]:
            return True
        return rows().student_ids != student_id

    return repo.rewrite(other_students, "the erasure")


def _orphan_segments(
    repo: GalleryRepository, student_id: str, before: dt.datetime
) -> dict[str, int]:
    """Segments no version names (an enrollment that failed after writing its own, or the pack
    of an attempt proposing the next version whose writer died) that hold the student's
    embeddings. Only those written before the erasure: a newer one may belong to an enrollment
    asked for after it, about to be committed. Returns {key: the student's embeddings in it
    not counted elsewhere}."""
    manifest = repo.current_manifest()
    found = {}
    for key in repo.blobs.list_older_than(GALLERY_SEGMENTS, before):
        if manifest is not None and manifest.has_segment(key):
            continue
        try:
            held = repo.load_segment(key).student_ids
        except NotFound:
            continue  # a lost attempt's, deleted by its writer or delete_orphan_packs meanwhile
        count = int((held == student_id).sum())
        if count:
            # A pack holds copies of rows counted already: of a version, or of an orphan.
            found[key] = 0 if packed_version(key) is not None else count
    return found


def _is_known(repo: GalleryRepository, student_id: str) -> bool:
    """Whether anything of the student is stored, or they were ever erased."""
    records = repo.records
    manifest = repo.current_manifest()
    return (
        records.get_student(student_id) is not None
        or bool(repo.blobs.list(student_photos_prefix(student_id)))
        or (manifest is not None and student_id in manifest.embeddings_per_student())
        or records.get_consent(student_id) is not None
        or bool(records.erased_since([student_id], _EPOCH))
        or bool(records.attendance_jobs(student_id))
        or bool(records.list_attendance(student_id=student_id))
    )


def _photos_of(
    blobs: BlobStore, records: RecordsStore, student_id: str, *, attendance: bool
) -> list[str]:
    """The student's enrollment photos with the uploads they came from and, with
    ``attendance``, the class photos that recognised them (they show their face) and the
    annotated ones (they show their name)."""
    # Listed after the tombstone: an enrollment that ran until it may have filed photos since.
    photos = blobs.list(student_photos_prefix(student_id))
    found = list(photos)
    for job_id in {enrollment_job_of(key) for key in photos}:
        found += blobs.list(upload_prefix(job_id))
    if attendance:
        for job_id in records.attendance_jobs(student_id):
            found += blobs.list(upload_prefix(job_id))
            found += blobs.list(annotated_prefix(job_id))
    return found


@dataclass
class _Unlinked:
    version: int  # the gallery version committed without the student
    embeddings: int  # the student's embeddings it and the deleted orphans held
    doomed: list[str]  # the blobs still to delete: photos, uploads, orphan segments


def _unlink_face_data(
    blobs: BlobStore, records: RecordsStore, student_id: str, at: dt.datetime, *, attendance: bool
) -> _Unlinked:
    """Tombstone the student, commit a gallery version without their embeddings, and find the
    blobs that still hold their face: what both a full erasure and the erasure of their face
    data alone (a withdrawn consent, an expired template) go through."""
    repo = GalleryRepository(blobs, records)
    records.record_erasure(student_id, at)
    version, embeddings = _remove_from_gallery(repo, student_id)
    # Also when the version committed nothing (no prune): a pack a writer left when it died
    # may still hold the student's rows.
    repo.delete_orphan_packs()
    orphans = _orphan_segments(repo, student_id, at)
    photos = _photos_of(blobs, records, student_id, attendance=attendance)
    return _Unlinked(version, embeddings + sum(orphans.values()), photos + list(orphans))


def erase_face_data(
    blobs: BlobStore, records: RecordsStore, student_id: str, *, now: dt.datetime | None = None
) -> dict:
    """Erase the student's face data (embeddings, enrollment photos and the uploads they came
    from) and keep the student, their classes, consent record and attendance. The tombstone it
    leaves refuses the face marks and gallery commits of work asked for before it, as for a
    full erasure. Returns what was removed (all zero when nothing was left)."""
    unlinked = _unlink_face_data(
        blobs, records, student_id, now or dt.datetime.now(dt.UTC), attendance=False
    )
    for key in unlinked.doomed:
        blobs.delete(key)
    photos = sum(1 for key in unlinked.doomed if not key.startswith(GALLERY_SEGMENTS))
    log.info("face data erased: %d embeddings, %d photos", unlinked.embeddings, photos)
    return {
        "student_id": student_id,
        "embeddings_removed": unlinked.embeddings,
        "photos_removed": photos,
        "model_version": unlinked.version,
    }


def erase_student(
    blobs: BlobStore,
    records: RecordsStore,
    student_id: str,
    *,
    attendance: bool,
    now: dt.datetime | None = None,
) -> dict:
    """Erase the student; NotFound if nothing of them is known or was ever erased. Returns
    what was removed (all zero when an earlier erasure left nothing)."""
    erased_at = now or dt.datetime.now(dt.UTC)
    if not _is_known(GalleryRepository(blobs, records), student_id):
        raise NotFound(f"no student {student_id!r}", code="student_not_found")
    unlinked = _unlink_face_data(blobs, records, student_id, erased_at, attendance=attendance)
    photos = sum(1 for key in unlinked.doomed if not key.startswith(GALLERY_SEGMENTS))
    records_removed = records.delete_attendance(student_id) if attendance else 0
    for key in unlinked.doomed:
        blobs.delete(key)
    records.delete_student(student_id)
    records.delete_consent(student_id)
    log.info(
        "student erased: %d embeddings, %d photos, %d attendance records",
        unlinked.embeddings,
        photos,
        records_removed,
    )
    return {
        "student_id": student_id,
        "embeddings_removed": unlinked.embeddings,
        "photos_removed": photos,
        "attendance_removed": records_removed,
        "model_version": unlinked.version,
    }
