"""Celery tasks: parse the message, call the service, report progress and the outcome on the job."""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable

import redis
from pydantic import BaseModel, ValidationError

from attendance.config.settings import Settings
from attendance.dispatch import ENROLL_TASK, RECOGNISE_TASK, REEMBED_TASK
from attendance.domain.errors import AppError, StorageFull, StoreBusy
from attendance.domain.schemas import EnrollmentRequest, RecognitionRequest, ReembedRequest
from attendance.services.enrollment import enroll
from attendance.services.recognition import recognise
from attendance.services.reembed import reembed
from attendance.stores.jobs import JobStore, StoredTask, new_holder
from attendance.worker.celery_app import app
from attendance.worker.lease import Lease
from attendance.worker.runtime import get_jobs, get_pipeline

log = logging.getLogger(__name__)

# Worth another try: the broker or a store blinked (StoreBusy: a cloud store throttling or
# unreachable, SQLite locked past its busy timeout, read-only or not openable). Anything else is
# a property of the input, or (StorageFull: a full disk, rarely freed within seconds) fails the
# job at once, saying which store is full.
TRANSIENT = (redis.ConnectionError, redis.TimeoutError, TimeoutError, ConnectionError)


class TooManyAttempts(AppError):
    code = "too_many_attempts"


def _run(task, payload: dict, model: type[BaseModel], work: Callable[..., BaseModel]) -> dict:
    jobs, settings = get_jobs()
    job_id = payload.get("job_id") if isinstance(payload, dict) else None
    if not isinstance(job_id, str):
        log.error("task %s dropped: its message names no job", task.request.id)
        return {"state": "failed", "error": "invalid_message"}

    if jobs.finished(job_id):
        # A redelivered duplicate of a job that already ended: its outcome stands, and the
        # message is acknowledged without running the work again.
        log.info("job %s already finished; duplicate delivery ignored", job_id)
        return {"job_id": job_id, "state": "duplicate"}
    holder = new_holder()
    running = jobs.take_lease(job_id, holder, settings.job_lease_seconds)
    if running is not None:
        # Another run holds the job (this is a copy the reconciler or kombu put back while
        # it ran): should that run's worker die, the reconciler recovers the job.
        log.info("job %s is running elsewhere (%s); this delivery is a duplicate", job_id, running)
        return {"job_id": job_id, "state": "duplicate"}
    with Lease(jobs, job_id, holder, settings.job_lease_seconds) as lease:
        queue = (task.request.delivery_info or {}).get("routing_key")
        jobs.remember_task(job_id, StoredTask(name=task.name, payload=payload, queue=queue))
        return _attempt(task, payload, model, work, jobs, settings, job_id, lease)


def _attempt(
    task,
    payload: dict,
    model: type[BaseModel],
    work: Callable[..., BaseModel],
    jobs: JobStore,
    settings: Settings,
    job_id: str,
    lease: Lease,
) -> dict:
    attempt = jobs.count_attempt(job_id)
    if attempt > settings.task_max_attempts:
        # Reached only when earlier attempts died with their worker (e.g. killed for memory):
        # fail the job instead of letting it take the queue down again.
        jobs.fail(
            job_id,
            TooManyAttempts(
                f"the job was started {attempt - 1} times without finishing; giving up"
            ),
        )
        return {"job_id": job_id, "state": "failed", "error": TooManyAttempts.code}
    try:
        request = model.model_validate(payload)
        pipe = get_pipeline()
        jobs.progress(job_id, 0)
        result = work(pipe, request, lambda done, total: jobs.progress(job_id, done, total))
    except (StoreBusy, *TRANSIENT) as exc:
        # Redis, or a cloud store still throttling or unreachable after its client's own
        # retries: worth another try later; in the end the job fails saying what was down.
        reason = exc.message if isinstance(exc, AppError) else f"{type(exc).__name__}: {exc}"
        if attempt < settings.task_max_attempts:
            countdown = settings.task_retry_backoff_seconds * 2 ** (attempt - 1)
            log.warning("job %s: %s; retrying in %g s", job_id, reason, countdown)
            lease.hand_over(countdown + settings.job_lease_seconds)
            raise task.retry(exc=exc, countdown=countdown, max_retries=None) from exc
        log.info("job %s failed: %s", job_id, reason)
        jobs.fail(job_id, exc)
        return {
            "job_id": job_id,
            "state": "failed",
            "error": getattr(exc, "code", "service_unavailable"),
        }
    except AppError as exc:
        log.info("job %s failed: %s", job_id, exc.message)
        jobs.fail(job_id, exc)
        return {"job_id": job_id, "state": "failed", "error": exc.code}
    except ValidationError as exc:
        log.error("job %s: invalid task message: %s", job_id, exc)
        jobs.fail(
            job_id,
            AppError(f"invalid task message: {exc.error_count()} errors", code="invalid_message"),
        )
        return {"job_id": job_id, "state": "failed", "error": "invalid_message"}
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            log.exception("job %s failed", job_id)
            jobs.fail(job_id, exc)
            raise
        # The stores say StorageFull themselves; this is the worker's own disk (a temp file).
        log.warning("job %s failed: no space left: %s", job_id, exc)
        full = StorageFull(
            "storage full: the worker's disk (its temporary files) has no space left; "
            "free space on it and submit the photos again"
        )
        jobs.fail(job_id, full)
        return {"job_id": job_id, "state": "failed", "error": full.code}
    except Exception as exc:
        log.exception("job %s failed", job_id)
        jobs.fail(job_id, exc)
        raise
    if not jobs.succeed(job_id, result.model_dump(mode="json")):
        # A duplicate that ran alongside the first delivery: the outcome stored first stands.
        log.info("job %s had already finished; this run's outcome is not stored", job_id)
        return {"job_id": job_id, "state": "duplicate"}
    log.info("job %s succeeded", job_id)
    # The result lives on the job; Celery's own result (and its log line) stays free of names.
    return {"job_id": job_id, "state": "succeeded"}


@app.task(name=ENROLL_TASK, bind=True)
def enroll_task(self, payload: dict) -> dict:
    return _run(self, payload, EnrollmentRequest, enroll)


@app.task(name=RECOGNISE_TASK, bind=True)
def recognise_task(self, payload: dict) -> dict:
    return _run(self, payload, RecognitionRequest, recognise)


@app.task(name=REEMBED_TASK, bind=True)
def reembed_task(self, payload: dict) -> dict:
    return _run(self, payload, ReembedRequest, reembed)
