"""Blob keys, named in one place: the web writes uploads and serves what the worker wrote, the
gallery writes its versions, erasure and retention delete by prefix.

    uploads/<job>/<index>.<ext>                  an upload (enrollment or class photo)
    annotated/<job>/<index>.jpg                  a class photo with the faces drawn on it
    students/<student>/<job>-<upload name>       an enrollment photo kept for the student
    students/<student>/jobs/<job>                marker: an enrollment was asked for them
    gallery/segments/<segment id>.npz            one enrollment's embeddings
    gallery/segments/pack-v<version>-<rand>.npz  segments a fold packed into one
    gallery/manifests/v<version>-<rand>.json     a gallery version
    gallery/snapshots/v<version>-<rand>.json     the older segments a manifest folds away
"""

from __future__ import annotations

import re
import uuid

UPLOADS = "uploads/"
ANNOTATED = "annotated/"
STUDENTS = "students/"
GALLERY_SEGMENTS = "gallery/segments/"
GALLERY_MANIFESTS = "gallery/manifests/"
GALLERY_SNAPSHOTS = "gallery/snapshots/"

# What the retention purge deletes once it is old enough. Gallery objects and a student's
# enrollment photos do not expire by age: they go when the student is erased, their consent is
# withdrawn or their template is not used for template_retention_days.
EXPIRING_PREFIXES = (UPLOADS, ANNOTATED)
# Where every gallery version (manifest or snapshot) lives.
GALLERY_VERSION_PREFIXES = (GALLERY_MANIFESTS, GALLERY_SNAPSHOTS)

_SEGMENT_SUFFIX = ".npz"
_VERSIONED = re.compile(r"gallery/(?:manifests|snapshots)/v(\d{8})-.*")
_PACKED = re.compile(re.escape(GALLERY_SEGMENTS) + r"pack-v(\d{8})-[0-9a-f]{8}\.npz")


def upload_prefix(job_id: str) -> str:
    return f"{UPLOADS}{job_id}/"


def upload_key(job_id: str, index: int, extension: str) -> str:
    return f"{upload_prefix(job_id)}{index:03d}.{extension}"


def annotated_prefix(job_id: str) -> str:
    return f"{ANNOTATED}{job_id}/"


def annotated_key(job_id: str, index: int) -> str:
    return f"{annotated_prefix(job_id)}{index:03d}.jpg"


def student_photos_prefix(student_id: str) -> str:
    """A student's enrollment photos: all of them go when the student is erased."""
    return f"{STUDENTS}{student_id}/"


def student_photo_key(student_id: str, job_id: str, upload_key: str) -> str:
    return f"{student_photos_prefix(student_id)}{job_id}-{upload_key.rsplit('/', 1)[-1]}"


def enrollment_marker_key(student_id: str, job_id: str) -> str:
    """Written by the API with an enrollment's uploads: erasing the student finds every
    enrollment ever asked for them, also those that failed or have not run yet."""
    return f"{student_photos_prefix(student_id)}jobs/{job_id}"


def is_student_photo(key: str, student_id: str) -> bool:
    """A photo kept under student_photos_prefix() (not an enrollment marker)."""
    prefix = student_photos_prefix(student_id)
    return key.startswith(prefix) and "/" not in key[len(prefix) :]


def enrollment_job_of(key: str) -> str:
    """The enrollment job id in a key under student_photos_prefix()."""
    return key.rsplit("/", 1)[-1].split("-", 1)[0]


def segment_key(segment_id: str) -> str:
    """The segment of one enrollment (its job id) or one re-embedding."""
    return f"{GALLERY_SEGMENTS}{segment_id}{_SEGMENT_SUFFIX}"


def rewritten_segment_key(key: str) -> str:
    """A new key for a segment rewritten with some of its rows: unique, so a writer that loses
    a race never overwrites what the winner's version names."""
    return f"{key.removesuffix(_SEGMENT_SUFFIX)}-e{uuid.uuid4().hex[:8]}{_SEGMENT_SUFFIX}"


def segment_job_of(key: str) -> str:
    """The enrollment job id that a segment key (rewritten or not) was named after."""
    return key.rsplit("/", 1)[-1].removesuffix(_SEGMENT_SUFFIX).split("-", 1)[0]


def packed_segment_key(version: int) -> str:
    """A new packed segment written for a version: unique, so a writer that loses a race never
    overwrites what the winner's version names."""
    return segment_key(f"pack-v{version:08d}-{uuid.uuid4().hex[:8]}")


def packed_version(key: str) -> int | None:
    """The version a packed segment key was written for; None for any other key."""
    match = _PACKED.fullmatch(key)
    return int(match.group(1)) if match else None


def reembed_segment_id(pipeline: str, student_id: str) -> str:
    """The re-embedded segment of one student: one plain blob-key segment ([A-Za-z0-9._-])."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", pipeline).strip("-")
    return f"reembed-{slug}-{student_id}"


def manifest_key(version: int) -> str:
    """A new manifest of a version: unique, so a writer that loses a race never overwrites the
    winner's."""
    return f"{GALLERY_MANIFESTS}v{version:08d}-{uuid.uuid4().hex[:8]}.json"


def snapshot_key(version: int) -> str:
    """A new snapshot of a version: unique, like manifest_key()."""
    return f"{GALLERY_SNAPSHOTS}v{version:08d}-{uuid.uuid4().hex[:8]}.json"


def version_of(key: str) -> int | None:
    """The version a manifest or snapshot key was written for; None for any other key."""
    match = _VERSIONED.fullmatch(key)
    return int(match.group(1)) if match else None
