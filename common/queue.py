"""The Celery app, built from settings, shared by the web (to enqueue) and the workers (to run).

The web sends tasks by name, so it never imports the worker code (and never loads TensorFlow).
"""

from __future__ import annotations

from celery import Celery

from common.settings import Settings

ENROLL_TASK = "attendance.enroll"
RECOGNIZE_TASK = "attendance.recognize"
CPU_QUEUE = "cpu"


def make_celery(settings: Settings) -> Celery:
    app = Celery("attendance", broker=settings.redis_url, backend=settings.redis_url)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_default_queue=CPU_QUEUE,
        # A task is acknowledged only when it finished, and requeued if its worker dies, so a
        # killed worker never loses a job; the tasks are idempotent, so running twice is safe.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={"visibility_timeout": 3600},
        broker_connection_retry_on_startup=True,
        result_expires=settings.job_ttl_seconds,
        task_track_started=True,
        worker_send_task_events=True,
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
    )
    return app


def enqueue(app: Celery, task_name: str, payload: dict, job_id: str) -> None:
    app.send_task(task_name, kwargs={"payload": payload}, task_id=job_id, queue=CPU_QUEUE)
