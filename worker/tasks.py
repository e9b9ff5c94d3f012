"""Celery tasks: parse the message, call common/, report progress and the outcome on the job."""

from __future__ import annotations

import logging
from typing import Callable

import redis
from pydantic import BaseModel

from common.enrollment import enroll
from common.errors import AppError
from common.queue import ENROLL_TASK, RECOGNIZE_TASK
from common.recognition import recognise
from common.schemas import EnrollmentRequest, RecognitionRequest
from worker.celery_app import app
from worker.runtime import get_pipeline

log = logging.getLogger(__name__)

# Worth another try: the broker or a store blinked. Anything else is a property of the input.
TRANSIENT = (redis.ConnectionError, redis.TimeoutError, TimeoutError, ConnectionError)


def _run(task, job_id: str, work: Callable[..., BaseModel]) -> dict:
    pipe = get_pipeline()
    jobs = pipe.jobs
    jobs.progress(job_id, 0)
    try:
        result = work(pipe, lambda done, total: jobs.progress(job_id, done, total))
    except AppError as exc:
        log.info("job %s failed: %s", job_id, exc.message)
        jobs.fail(job_id, exc)
        return {"job_id": job_id, "state": "failed", "error": exc.code}
    except TRANSIENT as exc:
        if task.request.retries < pipe.settings.task_max_retries:
            log.warning("job %s: transient error, retrying: %s", job_id, exc)
            raise task.retry(exc=exc, countdown=2 ** task.request.retries)
        jobs.fail(job_id, exc)
        raise
    except Exception as exc:
        log.exception("job %s failed", job_id)
        jobs.fail(job_id, exc)
        raise
    jobs.succeed(job_id, result.model_dump(mode="json"))
    log.info("job %s succeeded", job_id)
    # The result lives on the job; Celery's own result (and its log line) stays free of names.
    return {"job_id": job_id, "state": "succeeded"}


@app.task(name=ENROLL_TASK, bind=True)
def enroll_task(self, payload: dict) -> dict:
    req = EnrollmentRequest.model_validate(payload)
    return _run(self, req.job_id, lambda pipe, progress: enroll(pipe, req, progress))


@app.task(name=RECOGNIZE_TASK, bind=True)
def recognize_task(self, payload: dict) -> dict:
    req = RecognitionRequest.model_validate(payload)
    return _run(self, req.job_id, lambda pipe, progress: recognise(pipe, req, progress))
