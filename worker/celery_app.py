"""The worker's Celery app: `celery -A worker.celery_app worker`. Importing it loads no model."""

from __future__ import annotations

from common.queue import make_celery
from common.settings import get_settings

app = make_celery(get_settings())
app.conf.include = ["worker.tasks", "worker.info"]
