"""The periodic retention purge, scheduled by Celery beat (see worker/celery_app.py)."""

from __future__ import annotations

from common.blobstore import open_blob_store
from common.queue import PURGE_TASK
from common.retention import purge_expired
from common.settings import get_settings
from worker.celery_app import app


@app.task(name=PURGE_TASK)
def purge_expired_task() -> dict:
    settings = get_settings()
    blobs = open_blob_store(settings.blob_store_url, settings)
    return {"deleted": purge_expired(blobs, settings.retention_days)}
