"""Erasing a student everywhere: embeddings, enrollment photos, records and, on request,
attendance with the class photos that showed them.

A tombstone (student id, erased_at) is written first. Every later write that could bring the
student back checks it in the same transaction (records.py), so a recognition or an enrollment
asked for before the erasure, still queued or running, cannot undo it; one asked for afterwards
(a new enrollment) is allowed. Everything below runs after the tombstone, so it sees whatever
such work wrote before it. The gallery gets a new version without the student's embeddings; the
segments that held them, and every older manifest and snapshot (which name the student), are
then deleted, so no earlier version can bring them back. Erasing again removes whatever is left.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from attendance.domain.errors import NotFound
from attendance.domain.keys import (
    GALLERY_SEGMENTS,
    annotated_prefix,
    enrollment_job_of,
    student_photos_prefix,
    upload_prefix,
)
from attendance.stores.blob import BlobStore
from attendance.stores.gallery import GalleryRepository, Rewrite, _segment_bytes, segment_pipeline
from attendance.stores.records import RecordsStore

log = logging.getLogger(__name__)

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _remove_from_gallery(repo: GalleryRepository, student_id: str) -> tuple[int, int]:
    """Commit a version without the student; return (version, embeddings removed)."""

    def without_student(segments: list[dict]) -> Rewrite | None:
        if not any(student_id in seg["students"] for seg in segments):
            return None
        change = Rewrite(kept=[])
        for seg in segments:
            if student_id not in seg["students"]:
                change.kept.append(seg)
                continue
            change.drop.append(seg["key"])
            data = repo.load_segment(seg["key"])
            keep = data.student_ids != student_id
            change.removed += int((~keep).sum())
            if keep.any():
                key = f"{seg['key'].removesuffix('.npz')}-e{uuid.uuid4().hex[:8]}.npz"
                repo.blobs.put(
                    key, _segment_bytes(data.embeddings[keep], data.student_ids[keep].tolist())
                )
                change.written.append(key)
                counts = {k: v for k, v in seg["students"].items() if k != student_id}
                # The rewritten segment holds embeddings of the same pipeline as before.
                change.kept.append(
                    {
                        "key": key,
                        "count": int(keep.sum()),
                        "students": counts,
                        "pipeline": segment_pipeline(seg),
                    }
                )
        return change

    return repo.rewrite(without_student, "the erasure")


def _orphan_segments(
    repo: GalleryRepository, student_id: str, before: dt.datetime
) -> dict[str, int]:
    """Segments no version names (an enrollment that failed after writing its own) that hold
    the student's embeddings. Only those written before the erasure: a newer one may belong
    to an enrollment asked for after it, about to be committed. Returns {key: the student's
    embeddings in it}."""
    manifest = repo.current_manifest()
    found = {}
    for key in repo.blobs.list_older_than(GALLERY_SEGMENTS, before):
        if manifest is not None and manifest.has_segment(key):
            continue
        count = int((repo.load_segment(key).student_ids == student_id).sum())
        if count:
            found[key] = count
    return found


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
    student = records.get_student(student_id)
    repo = GalleryRepository(blobs, records)
    manifest = repo.current_manifest()
    photos = blobs.list(student_photos_prefix(student_id))
    known = (
        student is not None
        or bool(photos)
        or (manifest is not None and student_id in manifest.embeddings_per_student())
        or bool(records.erased_since([student_id], _EPOCH))
        or bool(records.attendance_jobs(student_id))
        or bool(records.list_attendance(student_id=student_id))
    )
    if not known:
        raise NotFound(f"no student {student_id!r}", code="student_not_found")
    records.record_erasure(student_id, erased_at)

    version, embeddings = _remove_from_gallery(repo, student_id)
    orphans = _orphan_segments(repo, student_id, erased_at)
    # Listed again: an enrollment that ran until the tombstone may have filed photos since.
    photos = blobs.list(student_photos_prefix(student_id))
    doomed = list(photos) + list(orphans)
    for job_id in {enrollment_job_of(key) for key in photos}:
        doomed += blobs.list(upload_prefix(job_id))
    records_removed = 0
    if attendance:
        # The class photos that recognised them show their face, the annotated ones their name.
        for job_id in records.attendance_jobs(student_id):
            doomed += blobs.list(upload_prefix(job_id))
            doomed += blobs.list(annotated_prefix(job_id))
        records_removed = records.delete_attendance(student_id)
    for key in doomed:
        blobs.delete(key)
    records.delete_student(student_id)
    log.info(
        "student erased: %d embeddings, %d photos, %d attendance records",
        embeddings + sum(orphans.values()),
        len(doomed),
        records_removed,
    )
    return {
        "student_id": student_id,
        "embeddings_removed": embeddings + sum(orphans.values()),
        "photos_removed": sum(not key.startswith(GALLERY_SEGMENTS) for key in doomed),
        "attendance_removed": records_removed,
        "model_version": version,
    }
