"""The periodic retention purge, scheduled by Celery beat (see src/attendance/worker/celery_app.py):
old uploads and annotated photos, and the face data of students not recognised for
template_retention_days."""

from __future__ import annotations

from attendance.config.settings import get_settings
from attendance.dispatch import PURGE_TASK
from attendance.services.retention import expire_templates, purge_expired
from attendance.stores.blob import open_blob_store
from attendance.stores.records import open_records
from attendance.worker.celery_app import app


@app.task(name=PURGE_TASK)
def purge_expired_task() -> dict:
    settings = get_settings()
    blobs = open_blob_store(settings.blob_store_url, settings)
    deleted = purge_expired(blobs, settings.retention_days)
    records = open_records(settings.records_url, settings)
    expired = expire_templates(blobs, records, settings.template_retention_days)
    return {"deleted": deleted, "templates_expired": len(expired)}
