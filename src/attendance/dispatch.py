"""The Celery app, built from settings, shared by the web (to enqueue) and the workers (to run).

The web sends tasks by name, so it never imports the worker code (and never loads TensorFlow).
"""

from __future__ import annotations

import json

from celery import Celery

from attendance.config.settings import Settings
from attendance.domain.queue import BrokerView, Delivery

ENROLL_TASK = "attendance.enroll"
PURGE_TASK = "attendance.purge_expired"
# The wire name keeps its old spelling: messages already queued carry it.
RECOGNISE_TASK = "attendance.recognize"
# Re-embeds the stored enrollment photos of students whose embeddings come from another
# pipeline (an older detector, alignment or model) with the current one
# (attendance.services.reembed).
REEMBED_TASK = "attendance.reembed"
# The tasks that run a job (attendance.stores.jobs): the reconciler watches their messages.
JOB_TASKS = (ENROLL_TASK, RECOGNISE_TASK, REEMBED_TASK)
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
        task_routes={name: {"queue": queue} for name in JOB_TASKS},
        # A task is acknowledged only when it finished, and requeued if its worker dies, so a
        # killed worker never loses a job; the tasks are idempotent, so running twice is safe.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # A pool process loads TensorFlow and FaceNet before it reports up (worker_process_init);
        # Celery's default 4 s would kill it on a busy machine and try again, forever.
        worker_proc_alive_timeout=180,
        # kombu's own redelivery of a message its worker never acknowledged, after an hour: a
        # backstop only, the reconciler (attendance.services.reconcile) acts within a lease.
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


# --- what the broker holds: for the reconciler -----------------------------------------------
# Read through kombu's Redis channel, so its key names (and any global key prefix) are the ones
# the workers use. Messages are kombu's JSON envelopes; Celery's task id (our job id) is in
# their headers.


def _task_id(raw: bytes | str) -> str | None:
    try:
        return json.loads(raw)["headers"]["id"]
    except (ValueError, KeyError, TypeError):
        return None


def broker_view(app: Celery, queues: list[str]) -> BrokerView:
    """The task ids waiting in ``queues`` (at every priority), then those taken by a worker:
    read in that order, a message moving from its queue to a worker is seen at least once
    (except in the instant kombu holds it between the two, which the reconciler allows for)."""
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        client = channel.client
        waiting = set()
        for queue in queues:
            for priority in channel.priority_steps:
                for raw in client.lrange(channel._q_for_pri(queue, priority), 0, -1):
                    if (task_id := _task_id(raw)) is not None:
                        waiting.add(task_id)
        taken = client.hgetall(channel.unacked_key)
        times = dict(client.zrange(channel.unacked_index_key, 0, -1, withscores=True))
        delivered = {}
        for tag, raw in taken.items():
            try:
                message = json.loads(raw)[0]
            except (ValueError, KeyError, TypeError, IndexError):
                continue
            task_id = message.get("headers", {}).get("id") if isinstance(message, dict) else None
            if task_id is not None:
                tag_text = tag.decode() if isinstance(tag, bytes) else tag
                delivered[task_id] = Delivery(tag=tag_text, at=float(times.get(tag, 0.0)))
        return BrokerView(waiting=frozenset(waiting), delivered=delivered)


def redeliver(app: Celery, tag: str) -> None:
    """Put a message a worker took back at the head of its queue, as kombu does once the
    visibility timeout has passed (one transaction: it leaves the worker's hold as it
    re-enters the queue)."""
    with app.connection_for_write() as conn:
        conn.default_channel.qos.restore_by_tag(tag)
