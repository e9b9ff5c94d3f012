"""Blob stores for uploads, annotated photos and gallery versions, chosen by blob_store_url.

``BlobStore`` (base.py) is what every backend answers; ``open_blob_store`` opens the one a URL
names, through ``OPENERS``: one entry per scheme of attendance.config.urls.BLOB_SCHEMES.
"""

from __future__ import annotations

from collections.abc import Callable

from attendance.config.settings import Settings, default_settings
from attendance.config.urls import blob_scheme, parse_file_url, parse_gs_url
from attendance.stores.blob.base import BlobStore, check_key, check_prefix
from attendance.stores.blob.local import LocalBlobStore

__all__ = [
    "OPENERS",
    "BlobStore",
    "LocalBlobStore",
    "check_key",
    "check_prefix",
    "open_blob_store",
]


def _open_local(url: str, settings: Settings) -> BlobStore:
    return LocalBlobStore(parse_file_url(url).root)


def _open_gcs(url: str, settings: Settings) -> BlobStore:
    # Imported here so that google-cloud-storage is loaded only where gs:// is used.
    from attendance.stores.blob.gcs import GcsBlobStore

    parsed = parse_gs_url(url)
    return GcsBlobStore(
        parsed.bucket,
        parsed.prefix,
        create_bucket=settings.gcs_create_bucket,
        timeout=settings.cloud_timeout_seconds,
        retry_deadline=settings.cloud_retry_deadline_seconds,
        ping_timeout=settings.store_ping_timeout_seconds,
    )


# How to open each scheme: (the URL, the settings) -> the store.
OPENERS: dict[str, Callable[[str, Settings], BlobStore]] = {
    "file://": _open_local,
    "gs://": _open_gcs,
}


def open_blob_store(url: str, settings: Settings | None = None) -> BlobStore:
    """The store a URL names; cloud clients take their timeouts and retries from ``settings``
    (defaults when None). Nothing here contacts a service: the first operation does."""
    return OPENERS[blob_scheme(url)](url, settings or default_settings())
