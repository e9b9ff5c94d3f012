"""Delete uploaded class photos and annotated images once their retention period is over, and
the face data of students not recognised for the template retention period.

A student's template (their embeddings, enrollment photos and the uploads they came from) is
last used when a face mark of theirs was last made; a student never recognised since is
counted from the later of their consent and their latest enrollment (when it was committed to
the gallery: its segment entry's ``written_at``, or for an entry written before entries recorded
it, the age of its segment's blob; a fold that packs such a segment stamps its age into the
entry first, since the blob is deleted later). Once that is longer ago than the template retention period their face data is
erased as a withdrawal erases it (attendance.services.erasure.erase_face_data): the student,
their consent record and their attendance stay, and they need enrolling again.
"""

from __future__ import annotations

import datetime as dt
import logging

from attendance.domain.keys import EXPIRING_PREFIXES, GALLERY_SEGMENTS
from attendance.domain.schemas import AuditEntry
from attendance.services.erasure import erase_face_data
from attendance.stores.blob import BlobStore
from attendance.stores.gallery import GalleryRepository, written_at
from attendance.stores.records import RecordsStore

log = logging.getLogger(__name__)


def purge_expired(blobs: BlobStore, retention_days: float, now: dt.datetime | None = None) -> int:
    cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=retention_days)
    removed = 0
    for prefix in EXPIRING_PREFIXES:
        for key in blobs.list_older_than(prefix, cutoff):
            blobs.delete(key)
            removed += 1
    log.info("retention: deleted %d photos written before %s", removed, cutoff.isoformat())
    return removed


RETENTION_ACTOR = "retention"


def _aware(at: dt.datetime) -> dt.datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)


def _used_since(
    records: RecordsStore, student_id: str, cutoff: dt.datetime, enrolled_since: bool
) -> bool:
    """Whether the student's template was recognised, enrolled or consented to since cutoff."""
    if enrolled_since:
        return True
    consent = records.get_consent(student_id)
    if consent is not None and _aware(consent.recorded_at) >= cutoff:
        return True
    return any(
        mark.source == "face" and _aware(mark.first_seen_at) >= cutoff
        for mark in records.list_attendance(student_id=student_id, date_from=cutoff.date())
    )


def expire_templates(
    blobs: BlobStore, records: RecordsStore, retention_days: float, now: dt.datetime | None = None
) -> list[str]:
    """Erase the face data of every student whose template was not used for retention_days;
    return their ids."""
    now = now or dt.datetime.now(dt.UTC)
    cutoff = now - dt.timedelta(days=retention_days)
    manifest = GalleryRepository(blobs, records).current_manifest()
    if manifest is None:
        return []
    old_segments: set[str] | None = None
    enrolled_since: set[str] = set()
    for segment in manifest.all_segments():
        at = written_at(segment)
        if at is None:
            if old_segments is None:
                old_segments = set(blobs.list_older_than(GALLERY_SEGMENTS, cutoff))
            recent = segment["key"] not in old_segments
        else:
            recent = _aware(at) >= cutoff
        if recent:
            enrolled_since.update(segment["students"])
    expired = []
    for student_id, count in sorted(manifest.embeddings_per_student().items()):
        if not count or _used_since(records, student_id, cutoff, student_id in enrolled_since):
            continue
        summary = erase_face_data(blobs, records, student_id)
        records.append_audit(
            AuditEntry(
                at=dt.datetime.now(dt.UTC),
                actor=RETENTION_ACTOR,
                action="expire_face_data",
                target=student_id,
                detail={k: v for k, v in summary.items() if k != "student_id"},
            )
        )
        expired.append(student_id)
    log.info(
        "retention: face data of %d students expired (unused since %s)",
        len(expired),
        cutoff.isoformat(),
    )
    return expired
