"""Erasing a student everywhere: embeddings, enrollment photos, records and, on request,
attendance with the class photos that showed them.

The gallery gets a new version without the student's embeddings; the segments that held them,
and every older manifest and snapshot (which name the student), are then deleted, so no earlier
version can bring them back.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid

from common.blobstore import BlobStore
from common.errors import GalleryConflict, NotFound
from common.gallery import (
    MAX_COMMIT_ATTEMPTS, SNAPSHOTS, GalleryRepository, Manifest, Snapshot, _segment_bytes,
)
from common.keys import student_photos_prefix
from common.records import GalleryPointer, RecordsStore

log = logging.getLogger(__name__)

_VERSIONED = re.compile(r"^gallery/(manifests|snapshots)/v(\d{8})-")


def _remove_from_gallery(repo: GalleryRepository, student_id: str) -> tuple[int, int]:
    """Commit a version without the student; return (version, embeddings removed)."""
    for _ in range(MAX_COMMIT_ATTEMPTS):
        pointer = repo.records.get_gallery_pointer()
        if pointer is None:
            return 0, 0
        base = Manifest.from_json(repo.blobs.get(pointer.manifest_key), repo.blobs)
        segments = base.all_segments()
        if not any(student_id in seg["students"] for seg in segments):
            return base.version, 0
        version = pointer.version + 1
        kept, written, dropped, removed = [], [], [], 0
        for seg in segments:
            if student_id not in seg["students"]:
                kept.append(seg)
                continue
            dropped.append(seg["key"])
            data = repo.load_segment(seg["key"])
            keep = data.student_ids != student_id
            removed += int((~keep).sum())
            if keep.any():
                key = f"{seg['key'].removesuffix('.npz')}-e{uuid.uuid4().hex[:8]}.npz"
                repo.blobs.put(key, _segment_bytes(data.embeddings[keep],
                                                   data.student_ids[keep].tolist()))
                written.append(key)
                counts = {k: v for k, v in seg["students"].items() if k != student_id}
                kept.append({"key": key, "count": int(keep.sum()), "students": counts})
        # Everything goes into one new snapshot: this version names nothing older.
        snapshot = Snapshot.from_segments(
            f"gallery/snapshots/v{version:08d}-{uuid.uuid4().hex[:8]}.json", kept)
        repo.blobs.put(snapshot.key, snapshot.to_json(), "application/json")
        manifest = Manifest(
            version=version, model_name=base.model_name, detector=base.detector,
            metric=base.metric, threshold=base.threshold,
            created_at=dt.datetime.now(dt.timezone.utc).isoformat(),
            segments=[], base=snapshot.key, snapshot=snapshot,
        )
        manifest_key = f"gallery/manifests/v{version:08d}-{uuid.uuid4().hex[:8]}.json"
        repo.blobs.put(manifest_key, manifest.to_json(), "application/json")
        if repo.records.swap_gallery_pointer(pointer.version, GalleryPointer(version,
                                                                             manifest_key)):
            SNAPSHOTS.put(snapshot)
            for key in dropped:
                repo.blobs.delete(key)
            _delete_older_versions(repo.blobs, version)
            return version, removed
        for key in written + [snapshot.key, manifest_key]:
            repo.blobs.delete(key)
    raise GalleryConflict("the gallery kept changing during the erasure; try again")


def _delete_older_versions(blobs: BlobStore, version: int) -> None:
    for prefix in ("gallery/manifests/", "gallery/snapshots/"):
        for key in blobs.list(prefix):
            match = _VERSIONED.match(key)
            if match and int(match.group(2)) < version:
                blobs.delete(key)


def erase_student(
    blobs: BlobStore, records: RecordsStore, student_id: str, *, attendance: bool
) -> dict:
    """Erase the student; NotFound if nothing of them is known. Returns what was removed."""
    student = records.get_student(student_id)
    repo = GalleryRepository(blobs, records)
    manifest = repo.current_manifest()
    if student is None and (manifest is None
                            or student_id not in manifest.embeddings_per_student()):
        raise NotFound(f"no student {student_id!r}", code="student_not_found")

    version, embeddings = _remove_from_gallery(repo, student_id)
    photos = blobs.list(student_photos_prefix(student_id))
    enrollment_jobs = {key.rsplit("/", 1)[-1].split("-", 1)[0] for key in photos}
    doomed = list(photos)
    for job_id in enrollment_jobs:
        doomed += blobs.list(f"uploads/{job_id}/")
    records_removed = 0
    if attendance:
        # The class photos that recognised them show their face and name: they go too.
        for record in records.list_attendance(student_id=student_id):
            if record.job_id:
                doomed += blobs.list(f"uploads/{record.job_id}/")
                doomed += blobs.list(f"annotated/{record.job_id}/")
        records_removed = records.delete_attendance(student_id)
    for key in doomed:
        blobs.delete(key)
    records.delete_student(student_id)
    log.info("student erased: %d embeddings, %d photos, %d attendance records",
             embeddings, len(doomed), records_removed)
    return {
        "student_id": student_id,
        "embeddings_removed": embeddings,
        "photos_removed": len(doomed),
        "attendance_removed": records_removed,
        "model_version": version,
    }
