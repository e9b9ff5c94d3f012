"""Blob keys, named in one place: the web writes uploads and serves what the worker wrote."""

from __future__ import annotations


def upload_key(job_id: str, index: int, extension: str) -> str:
    return f"uploads/{job_id}/{index:03d}.{extension}"


def annotated_key(job_id: str, index: int) -> str:
    return f"annotated/{job_id}/{index:03d}.jpg"
