"""Reading photo uploads: every file is checked before any is stored, and keys are ours.

The blob key is ``uploads/<job_id>/<index:03d>.<ext>``, with the extension taken from the format
Pillow detected, so a client's filename can never steer where (or as what) a file is stored.
The client's filename survives only as a display name, without any path components.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from werkzeug.datastructures import FileStorage, MultiDict

from common.blobstore import BlobStore
from common.errors import ValidationFailed
from common.images import check_image
from common.keys import upload_key
from common.schemas import Upload

log = logging.getLogger(__name__)

PHOTOS_FIELD = "photos"
MAX_DISPLAY_NAME = 255

_EXTENSIONS = {
    "JPEG": ("jpg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"),
    "BMP": ("bmp", "image/bmp"),
    "TIFF": ("tif", "image/tiff"),
    "GIF": ("gif", "image/gif"),
}
_PATH_SEPARATORS = re.compile(r"[/\\]")


@dataclass(frozen=True)
class CheckedPhoto:
    display_name: str
    data: bytes
    extension: str
    content_type: str


def display_name(raw: str | None, index: int) -> str:
    """The last path component of the client's filename, printable; a placeholder if none."""
    parts = [p for p in _PATH_SEPARATORS.split(raw or "") if p not in ("", ".", "..")]
    name = "".join(ch for ch in (parts[-1] if parts else "") if ch.isprintable()).strip()
    return name[:MAX_DISPLAY_NAME] or f"photo-{index + 1}"


def _chosen_files(files: MultiDict) -> list[FileStorage]:
    # A browser form with no file chosen still sends one part, with no filename and no bytes.
    chosen = []
    for storage in files.getlist(PHOTOS_FIELD):
        if not storage.filename and storage.stream.read(1) == b"":
            continue
        storage.stream.seek(0)
        chosen.append(storage)
    return chosen


def read_photos(
    files: MultiDict, form: MultiDict, *, max_count: int, max_pixels: int
) -> list[CheckedPhoto]:
    """Read and check every uploaded photo; raise on the first bad one, having stored nothing."""
    chosen = _chosen_files(files)
    if not chosen:
        hint = (
            " (it was sent as a text field; send the photos as files)"
            if PHOTOS_FIELD in form
            else ""
        )
        raise ValidationFailed(f"at least one file in {PHOTOS_FIELD} is required{hint}",
                               code="missing_photos")
    if len(chosen) > max_count:
        raise ValidationFailed(
            f"{len(chosen)} files in {PHOTOS_FIELD}; at most {max_count} are allowed",
            code="too_many_photos",
        )
    photos = []
    for index, storage in enumerate(chosen):
        name = display_name(storage.filename, index)
        data = storage.read()
        checked = check_image(data, f"photo {index + 1} ({name})", max_pixels)
        extension, content_type = _EXTENSIONS.get(
            checked.format, (checked.format.lower(), "application/octet-stream")
        )
        photos.append(CheckedPhoto(name, data, extension, content_type))
    return photos


def store_photos(blobs: BlobStore, job_id: str, photos: list[CheckedPhoto]) -> list[Upload]:
    """Store all photos or none: on failure, whatever this call wrote is deleted again."""
    stored: list[Upload] = []
    try:
        for index, photo in enumerate(photos):
            key = upload_key(job_id, index, photo.extension)
            blobs.put(key, photo.data, photo.content_type)
            stored.append(Upload(key=key, filename=photo.display_name))
    except BaseException:
        discard_uploads(blobs, stored)
        raise
    return stored


def discard_uploads(blobs: BlobStore, uploads: list[Upload]) -> None:
    for upload in uploads:
        try:
            blobs.delete(upload.key)
        except Exception:  # best effort: the caller is already reporting the real failure
            log.exception("could not delete %s", upload.key)
