"""Job state in Redis: what the API reports at /api/v1/jobs/<id> while workers make progress."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from typing import TypeVar, cast

import redis

from attendance.domain.errors import AppError, NotFound
from attendance.domain.schemas import ErrorBody, JobKind, JobView, Progress

log = logging.getLogger(__name__)

_PREFIX = "attendance:job:"
# A job in one of these states never changes state again (only a settled face edits its result).
FINISHED = ("succeeded", "failed")
T = TypeVar("T")
# What a change answers to leave the job as it was (JobStore._rewrite).
_UNCHANGED = object()


def new_job_id() -> str:
    return uuid.uuid4().hex


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class JobStore:
    def __init__(self, client: redis.Redis, ttl_seconds: int):
        self.redis = client
        self.ttl = ttl_seconds

    @classmethod
    def from_url(cls, url: str, ttl_seconds: int) -> JobStore:
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=5)
        return cls(client, ttl_seconds)

    def _save(self, job: JobView) -> None:
        self.redis.set(_PREFIX + job.job_id, job.model_dump_json(), ex=self.ttl)

    def create(
        self, job_id: str, kind: JobKind, total: int, class_id: str | None = None
    ) -> JobView:
        now = _now()
        job = JobView(
            job_id=job_id,
            kind=kind,
            class_id=class_id,
            state="queued",
            progress=Progress(done=0, total=total),
            created_at=now,
            updated_at=now,
        )
        self._save(job)
        return job

    def get(self, job_id: str) -> JobView:
        raw = self.redis.get(_PREFIX + job_id)
        if raw is None:
            raise NotFound(f"no job {job_id!r}", code="job_not_found")
        return JobView.model_validate_json(raw)

    def finished(self, job_id: str) -> bool:
        """Whether the job has succeeded or failed (False for a job not, or no longer, known)."""
        raw = self.redis.get(_PREFIX + job_id)
        return raw is not None and JobView.model_validate_json(raw).state in FINISHED

    def _rewrite(self, job_id: str, change: Callable[[JobView], object], *, keep_ttl: bool):
        """Read the job, let ``change`` edit it and write it back, as one transaction: under
        WATCH, ``change`` runs again if another writer saved the job meanwhile. A ``change``
        that answers _UNCHANGED writes nothing. Returns what ``change`` answered."""
        key = _PREFIX + job_id
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    if raw is None:
                        raise NotFound(f"no job {job_id!r}", code="job_not_found")
                    job = JobView.model_validate_json(raw)
                    answer = change(job)
                    if answer is _UNCHANGED:
                        pipe.unwatch()
                        return answer
                    job.updated_at = _now()
                    pipe.multi()
                    if keep_ttl:
                        pipe.set(key, job.model_dump_json(), keepttl=True)
                    else:
                        pipe.set(key, job.model_dump_json(), ex=self.ttl)
                    pipe.execute()
                    return answer
                except redis.WatchError:
                    continue

    def _advance(self, job_id: str, change: Callable[[JobView], None]) -> bool:
        """Apply ``change`` to a job that is not finished yet, as one transaction; False (and
        nothing written) once it has succeeded or failed, so a redelivered duplicate can never
        take a finished job back to running, nor rewrite its outcome, whatever it interleaves
        with."""

        def unless_finished(job: JobView) -> object:
            if job.state in FINISHED:
                return _UNCHANGED
            change(job)
            return True

        return self._rewrite(job_id, unless_finished, keep_ttl=False) is not _UNCHANGED

    def progress(self, job_id: str, done: int, total: int | None = None) -> bool:
        def change(job: JobView) -> None:
            job.state = "running"
            job.progress = Progress(done=done, total=job.progress.total if total is None else total)

        return self._advance(job_id, change)

    def succeed(self, job_id: str, result: dict) -> bool:
        def change(job: JobView) -> None:
            job.state, job.result, job.error = "succeeded", result, None
            job.progress = Progress(done=job.progress.total, total=job.progress.total)

        return self._advance(job_id, change)

    def fail(self, job_id: str, error: AppError | Exception) -> bool:
        if isinstance(error, AppError):
            body = ErrorBody(code=error.code, message=error.message)
        else:
            # An unexpected exception's text is for operators (it can hold paths, hosts or
            # library internals): it goes to the log, and the client gets a plain reason.
            log.error(
                "job %s failed with an unexpected error: %s: %s",
                job_id,
                type(error).__name__,
                error,
            )
            body = ErrorBody(
                code="internal_error",
                message="internal error while processing the job; "
                f"see the worker log for job {job_id}",
            )

        def change(job: JobView) -> None:
            job.state, job.error = "failed", body

        return self._advance(job_id, change)

    def update_result(self, job_id: str, change: Callable[[JobView], T]) -> T:
        """Change a job in place, as one transaction: ``change`` edits the job it is given
        (and may raise to leave it as it was); it runs again if another writer saved the job
        meanwhile, so two changes at once both stay. The job keeps its time to live."""
        return cast(T, self._rewrite(job_id, change, keep_ttl=True))

    def count_attempt(self, job_id: str) -> int:
        """Count one more start of this job's task; the count outlives a killed worker."""
        key = f"{_PREFIX}{job_id}:attempts"
        pipe = self.redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, self.ttl)
        return int(pipe.execute()[0])

    def delete(self, job_id: str) -> None:
        """Forget a job whose task was never enqueued, so no one waits on it."""
        self.redis.delete(_PREFIX + job_id)
