"""The worker's Celery app: `celery -A worker.celery_app worker`. Importing it loads no model."""

from __future__ import annotations

from common.queue import PURGE_TASK, make_celery
from common.settings import get_settings

app = make_celery(get_settings())
app.conf.include = ["worker.tasks", "worker.info", "worker.retention"]
# `celery -A worker.celery_app beat` runs the retention purge on this schedule.
app.conf.beat_schedule = {
    "purge-expired-photos": {"task": PURGE_TASK, "schedule": get_settings().retention_sweep_seconds},
}
