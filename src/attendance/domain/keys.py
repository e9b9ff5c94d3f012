"""Blob keys, named in one place: the web writes uploads and serves what the worker wrote."""

from __future__ import annotations


def upload_key(job_id: str, index: int, extension: str) -> str:
    return f"{upload_prefix(job_id)}{index:03d}.{extension}"


def annotated_key(job_id: str, index: int) -> str:
    return f"{annotated_prefix(job_id)}{index:03d}.jpg"


def student_photos_prefix(student_id: str) -> str:
    """A student's enrollment photos: all of them go when the student is erased."""
    return f"students/{student_id}/"


def student_photo_key(student_id: str, job_id: str, upload_key: str) -> str:
    return f"{student_photos_prefix(student_id)}{job_id}-{upload_key.rsplit('/', 1)[-1]}"


def enrollment_marker_key(student_id: str, job_id: str) -> str:
    """Written by the API with an enrollment's uploads: erasing the student finds every
    enrollment ever asked for them, also those that failed or have not run yet."""
    return f"{student_photos_prefix(student_id)}jobs/{job_id}"


def enrollment_job_of(key: str) -> str:
    """The enrollment job id in a key under student_photos_prefix()."""
    return key.rsplit("/", 1)[-1].split("-", 1)[0]


def upload_prefix(job_id: str) -> str:
    return f"uploads/{job_id}/"


def annotated_prefix(job_id: str) -> str:
    return f"annotated/{job_id}/"


GALLERY_SEGMENTS = "gallery/segments/"
