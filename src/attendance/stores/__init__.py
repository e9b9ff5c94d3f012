"""Everything the application stores, and ``open_stores``: the one place that builds the stores
the settings name, for the web app and the workers alike.

blob/     uploads, annotated photos and gallery versions (files or GCS)
records/  students, attendance, audit and the gallery pointer (SQLite or DynamoDB)
gallery   the versioned gallery of embeddings, kept in both of the above
jobs      job state in Redis
"""

from __future__ import annotations

from dataclasses import dataclass

from attendance.config.settings import Settings
from attendance.stores.blob import BlobStore, open_blob_store
from attendance.stores.gallery import GalleryRepository
from attendance.stores.jobs import JobStore
from attendance.stores.records import RecordsStore, open_records


@dataclass(frozen=True)
class Stores:
    blobs: BlobStore
    records: RecordsStore
    gallery_repo: GalleryRepository
    jobs: JobStore


def open_stores(settings: Settings) -> Stores:
    """The stores ``settings`` name. None of them contacts its service yet (SQLite creates its
    file), so an app can start while Redis or a cloud store is down and /readyz can say so."""
    blobs = open_blob_store(settings.blob_store_url, settings)
    records = open_records(settings.records_url, settings)
    return Stores(
        blobs=blobs,
        records=records,
        gallery_repo=GalleryRepository(blobs, records),
        jobs=JobStore.from_url(settings.redis_url, settings.job_ttl_seconds),
    )
