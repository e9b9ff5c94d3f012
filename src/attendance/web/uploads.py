"""Reading photo uploads: every file is checked before any is stored, and keys are ours.

The blob key is ``uploads/<job_id>/<index:03d>.<ext>``, with the extension taken from the format
Pillow detected, so a client's filename can never steer where (or as what) a file is stored.
The client's filename survives only as a display name, without any path components.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass

from flask import current_app, has_app_context
from werkzeug.datastructures import FileStorage, MultiDict

from attendance.domain.errors import PayloadTooLarge, ValidationFailed
from attendance.domain.keys import upload_key
from attendance.domain.schemas import Upload
from attendance.photos.checks import check_image, probe_image
from attendance.photos.exif import captured_at
from attendance.stores.blob import BlobStore
from attendance.web.context import EXTENSION_KEY

log = logging.getLogger(__name__)

PHOTOS_FIELD = "photos"
MAX_DISPLAY_NAME = 255

_EXTENSIONS = {
    "JPEG": ("jpg", "image/jpeg"),
    # An MPO is a JPEG with further frames appended; JPEG readers show its first frame.
    "MPO": ("jpg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"),
    "BMP": ("bmp", "image/bmp"),
    "TIFF": ("tif", "image/tiff"),
    "GIF": ("gif", "image/gif"),
    # Kept as sent, not converted: the orientation lives in the container (libheif turns the
    # photo upright as it decodes) and the EXIF (captured_at) stays with the bytes; the worker
    # and the face crops open it through the same Pillow plugin. iPhones' HEIF is HEIC (HEVC).
    "HEIF": ("heic", "image/heic"),
}
_PATH_SEPARATORS = re.compile(r"[/\\]")


@dataclass(frozen=True)
class CheckedPhoto:
    display_name: str
    data: bytes
    extension: str
    content_type: str
    captured_at: dt.datetime | None = None


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


def _request_pixel_limit() -> int | None:
    """The app's ATTENDANCE_MAX_REQUEST_PIXELS, when called within it."""
    if not has_app_context():
        return None
    svc = current_app.extensions.get(EXTENSION_KEY)
    return svc.settings.max_request_pixels if svc is not None else None


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1_000_000:.1f}".removesuffix(".0")


def read_photos(
    files: MultiDict,
    form: MultiDict,
    *,
    max_count: int,
    max_pixels: int,
    max_request_pixels: int | None = None,
) -> list[CheckedPhoto]:
    """Read and check every uploaded photo; raise on the first bad one, having stored nothing.

    Two passes: every file's headers first (format, size, one frame; ``max_pixels`` each and
    ``max_request_pixels`` in all, which defaults to the app's setting), so a request declaring
    too many pixels is refused before any pixel is decoded; then every file is decoded."""
    chosen = _chosen_files(files)
    text_parts = len(form.getlist(PHOTOS_FIELD))
    if not chosen:
        hint = " (it was sent as a text field; send the photos as files)" if text_parts else ""
        raise ValidationFailed(
            f"at least one file in {PHOTOS_FIELD} is required{hint}", code="missing_photos"
        )
    if text_parts:
        # werkzeug reads a part whose Content-Disposition has no readable filename parameter as
        # a text field; a raw CR or LF inside the filename cuts the header in two, so that is
        # what such a photo turns into. Dropping it would process the others without a word.
        raise ValidationFailed(
            f"{text_parts} of the {text_parts + len(chosen)} parts named {PHOTOS_FIELD} "
            "arrived as text fields, not files: their Content-Disposition header has no "
            "readable filename (a raw CR or LF in a filename breaks the header; send it "
            "percent-encoded, as browsers do); nothing was processed",
            code="photos_part_not_a_file",
        )
    if len(chosen) > max_count:
        raise ValidationFailed(
            f"{len(chosen)} files in {PHOTOS_FIELD}; at most {max_count} are allowed",
            code="too_many_photos",
        )
    if max_request_pixels is None:
        max_request_pixels = _request_pixel_limit()
    labelled = []
    declared = 0
    for index, storage in enumerate(chosen):
        name = display_name(storage.filename, index)
        label = f"photo {index + 1} ({name})"
        data = storage.read()
        declared += probe_image(data, label, max_pixels).pixels
        labelled.append((name, label, data))
    if max_request_pixels is not None and declared > max_request_pixels:
        raise PayloadTooLarge(
            f"the {len(chosen)} photos declare {_megapixels(declared)} megapixels in all; a "
            f"request may declare at most {_megapixels(max_request_pixels)} megapixels (send "
            "fewer or smaller photos); nothing was decoded or stored",
            code="request_too_large",
        )
    photos = []
    for name, label, data in labelled:
        checked = check_image(data, label, max_pixels)
        extension, content_type = _EXTENSIONS.get(
            checked.format, (checked.format.lower(), "application/octet-stream")
        )
        photos.append(CheckedPhoto(name, data, extension, content_type, captured_at(data)))
    return photos


def store_photos(blobs: BlobStore, job_id: str, photos: list[CheckedPhoto]) -> list[Upload]:
    """Store all photos or none: on failure, whatever this call wrote is deleted again."""
    stored: list[Upload] = []
    try:
        for index, photo in enumerate(photos):
            key = upload_key(job_id, index, photo.extension)
            blobs.put(key, photo.data, photo.content_type)
            stored.append(
                Upload(key=key, filename=photo.display_name, captured_at=photo.captured_at)
            )
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
