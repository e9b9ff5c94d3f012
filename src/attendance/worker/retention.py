"""The periodic retention purge, scheduled by Celery beat (see src/attendance/worker/celery_app.py)."""

from __future__ import annotations

from attendance.config.settings import get_settings
from attendance.dispatch import PURGE_TASK
from attendance.services.retention import purge_expired
from attendance.stores.blob import open_blob_store
from attendance.worker.celery_app import app


@app.task(name=PURGE_TASK)
def purge_expired_task() -> dict:
    settings = get_settings()
    blobs = open_blob_store(settings.blob_store_url, settings)
    return {"deleted": purge_expired(blobs, settings.retention_days)}
