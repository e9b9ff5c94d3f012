"""The worker's Celery app: `celery -A attendance.worker.celery_app worker`. Importing it loads no model."""

from __future__ import annotations

from attendance.config.settings import get_settings
from attendance.dispatch import PURGE_TASK, make_celery
from attendance.worker.reconciler import Reconciler

app = make_celery(get_settings())
# Puts back, sends again or fails the jobs whose worker, message or submission was lost.
app.steps["worker"].add(Reconciler)
app.conf.include = [
    "attendance.worker.tasks",
    "attendance.worker.info",
    "attendance.worker.retention",
]
# `celery -A attendance.worker.celery_app beat` runs the retention purge on this schedule.
app.conf.beat_schedule = {
    "purge-expired-photos": {
        "task": PURGE_TASK,
        "schedule": get_settings().retention_sweep_seconds,
    },
}
