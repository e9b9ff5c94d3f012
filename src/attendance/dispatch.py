"""The Celery app, built from settings, shared by the web (to enqueue) and the workers (to run).

The web sends tasks by name, so it never imports the worker code (and never loads TensorFlow).
"""

from __future__ import annotations

from celery import Celery

from attendance.config.settings import Settings

ENROLL_TASK = "attendance.enroll"
PURGE_TASK = "attendance.purge_expired"
# The wire name keeps its old spelling: messages already queued carry it.
RECOGNISE_TASK = "attendance.recognize"
# Re-embeds the stored enrollment photos of students whose embeddings come from another
# pipeline (an older detector, alignment or model) with the current one
# (attendance.services.reembed).
REEMBED_TASK = "attendance.reembed"
# Answers which device (CPU/GPU) a worker's TensorFlow uses, its queues and its stores.
WORKER_INFO_TASK = "attendance.worker_info"
CPU_QUEUE = "cpu"
GPU_QUEUE = "gpu"


def make_celery(settings: Settings) -> Celery:
    app = Celery("attendance", broker=settings.redis_url, backend=settings.redis_url)
    # Face work goes to "gpu" when GPU workers are deployed (settings.task_queue/gpu_workers),
    # else to "cpu"; each worker says what it consumes with -Q.
    queue = settings.resolved_task_queue
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_default_queue=queue,
        task_routes={
            ENROLL_TASK: {"queue": queue},
            RECOGNISE_TASK: {"queue": queue},
            REEMBED_TASK: {"queue": queue},
        },
        # A task is acknowledged only when it finished, and requeued if its worker dies, so a
        # killed worker never loses a job; the tasks are idempotent, so running twice is safe.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # A pool process loads TensorFlow and FaceNet before it reports up (worker_process_init);
        # Celery's default 4 s would kill it on a busy machine and try again, forever.
        worker_proc_alive_timeout=180,
        broker_transport_options={"visibility_timeout": 3600},
        broker_connection_retry_on_startup=True,
        result_expires=settings.job_ttl_seconds,
        task_track_started=True,
        worker_send_task_events=True,
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
    )
    return app


def task_queue(app: Celery) -> str:
    """The queue this app's settings send face work to ("cpu" or "gpu")."""
    return app.conf.task_default_queue


def enqueue(
    app: Celery, task_name: str, payload: dict, job_id: str, queue: str | None = None
) -> None:
    # What Flower, the task events and the logs show of the message: the job id only, never
    # a student's name (the message itself is gone from Redis once a worker has taken it).
    app.send_task(
        task_name,
        kwargs={"payload": payload},
        task_id=job_id,
        queue=queue or task_queue(app),
        argsrepr="()",
        kwargsrepr=repr({"payload": {"job_id": job_id}}),
    )
