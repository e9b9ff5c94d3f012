"""Job state in Redis: what the API reports at /api/v1/jobs/<id> while workers make progress."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar, cast

import redis

from attendance.domain.errors import AppError, NotFound
from attendance.domain.schemas import ErrorBody, JobKind, JobView, Progress

log = logging.getLogger(__name__)

_PREFIX = "attendance:job:"
# The ids of the jobs not finished yet, for the reconciler to look over (a hint: it reads each
# job's own state before acting, and drops the ids of finished or expired jobs).
_OPEN = "attendance:jobs:open"
_SWEEP_LOCK = "attendance:reconcile:lock"
_ORPHANS = "attendance:reconcile:orphans"
# A lease handed over to the retry of its task (countdown pending): the retry may take it.
_RETRY_MARK = "retry:"
# A job in one of these states never changes state again (only a settled face edits its result).
FINISHED = ("succeeded", "failed")
T = TypeVar("T")
# What a change answers to leave the job as it was (JobStore._rewrite).
_UNCHANGED = object()


def new_job_id() -> str:
    return uuid.uuid4().hex


def new_holder() -> str:
    """Who holds a lease: this host and process, and a nonce for this run of the task."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _holder_is_dead_here(holder: str) -> bool:
    """Whether ``holder`` names a process of this host that no longer runs (a pool process
    killed mid-job: its lease need not be waited out). Containers have hostnames, and pid
    namespaces, of their own."""
    host, _, rest = holder.removeprefix(_RETRY_MARK).partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclass(frozen=True)
class StoredTask:
    """A started job's task message, kept so that the job can be sent again if its message is
    lost with its worker or with Redis."""

    name: str
    payload: dict
    queue: str | None


# Lua, so that reading the holder and writing the lease are one step for Redis.
_TAKE = """
local v = redis.call('GET', KEYS[1])
if (not v) or v == ARGV[1] or v == ARGV[3] or string.sub(v, 1, 6) == 'retry:' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return false
end
return v
"""
_RENEW = """
local v = redis.call('GET', KEYS[1])
if (not v) or v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_HAND_OVER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class JobStore:
    def __init__(self, client: redis.Redis, ttl_seconds: int):
        self.redis = client
        self.ttl = ttl_seconds
        self._take = client.register_script(_TAKE)
        self._renew = client.register_script(_RENEW)
        self._hand_over = client.register_script(_HAND_OVER)
        self._release = client.register_script(_RELEASE)

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
        self._track(job_id)
        return job

    def _track(self, job_id: str) -> None:
        self.redis.sadd(_OPEN, job_id)

    def _closed(self, job_id: str) -> None:
        """Forget what a finished job no longer needs; the reconciler would drop it anyway."""
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.srem(_OPEN, job_id)
            pipe.delete(_PREFIX + job_id + ":task")
            pipe.execute()
        except redis.RedisError:
            log.warning("job %s finished; its bookkeeping is left to expire", job_id)

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
            return job.state

        state = self._rewrite(job_id, unless_finished, keep_ttl=False)
        if state in FINISHED:
            self._closed(job_id)
        return state is not _UNCHANGED

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
        self._closed(job_id)

    # --- leases: which run of a job's task is the live one ------------------------------------

    def _lease_key(self, job_id: str) -> str:
        return f"{_PREFIX}{job_id}:lease"

    def take_lease(self, job_id: str, holder: str, seconds: float) -> str | None:
        """Take the job's lease for ``seconds``; None when taken, else who holds it. A lease
        handed over to a retry is taken, and so is one held by a process of this host that
        died (it cannot renew it, so waiting for it to lapse would only delay the job)."""
        key, ms = self._lease_key(job_id), int(seconds * 1000)
        current = self._take(keys=[key], args=[holder, ms, ""])
        if current is None:
            return None
        current = current.decode() if isinstance(current, bytes) else str(current)
        if (
            _holder_is_dead_here(current)
            and self._take(keys=[key], args=[holder, ms, current]) is None
        ):
            return None
        return current

    def renew_lease(self, job_id: str, holder: str, seconds: float) -> bool:
        """Extend the lease (taking it again if it lapsed meanwhile); False if another run
        holds it now."""
        return bool(self._renew(keys=[self._lease_key(job_id)], args=[holder, int(seconds * 1000)]))

    def hand_over_lease(self, job_id: str, holder: str, seconds: float) -> bool:
        """Keep the job leased for ``seconds`` on behalf of its task's retry, which takes it."""
        return bool(
            self._hand_over(
                keys=[self._lease_key(job_id)],
                args=[holder, int(seconds * 1000), _RETRY_MARK + holder],
            )
        )

    def release_lease(self, job_id: str, holder: str) -> None:
        self._release(keys=[self._lease_key(job_id)], args=[holder])

    def _held_key(self, job_id: str) -> str:
        return f"{_PREFIX}{job_id}:held"

    def hold(self, job_ids: Iterable[str], holder: str, seconds: float) -> None:
        """Mark these jobs as held by a live worker (``holder``, its main process) for
        ``seconds``: their messages are with it, waiting for a pool process or a countdown."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.set(self._held_key(job_id), holder, px=int(seconds * 1000))
        pipe.execute()

    def leased(self, job_ids: Iterable[str]) -> set[str]:
        """Which of these jobs a live run leases or a live worker holds (not a process of this
        host that died, nor one whose lease lapsed)."""
        ids = list(job_ids)
        if not ids:
            return set()
        keys = [key for job_id in ids for key in (self._lease_key(job_id), self._held_key(job_id))]
        holders = self.redis.mget(keys)
        live = set()
        for index, holder in enumerate(holders):
            if holder is None:
                continue
            text = holder.decode() if isinstance(holder, bytes) else str(holder)
            if text.startswith(_RETRY_MARK) or not _holder_is_dead_here(text):
                live.add(ids[index // 2])
        return live

    # --- what the reconciler needs ---------------------------------------------------------------

    def remember_task(self, job_id: str, task: StoredTask) -> None:
        body = json.dumps({"name": task.name, "payload": task.payload, "queue": task.queue})
        self.redis.set(_PREFIX + job_id + ":task", body, ex=self.ttl)

    def stored_task(self, job_id: str) -> StoredTask | None:
        raw = self.redis.get(_PREFIX + job_id + ":task")
        if raw is None:
            return None
        body = json.loads(raw)
        return StoredTask(name=body["name"], payload=body["payload"], queue=body.get("queue"))

    def open_jobs(self) -> list[JobView]:
        """The jobs not finished yet (forgetting the ids of finished or expired ones)."""
        ids = sorted(m.decode() if isinstance(m, bytes) else m for m in self.redis.smembers(_OPEN))
        if not ids:
            return []
        raws = self.redis.mget([_PREFIX + job_id for job_id in ids])
        jobs, gone = [], []
        for job_id, raw in zip(ids, raws, strict=True):
            job = JobView.model_validate_json(raw) if raw is not None else None
            if job is None or job.state in FINISHED:
                gone.append(job_id)
            else:
                jobs.append(job)
        if gone:
            self.redis.srem(_OPEN, *gone)
        return jobs

    def take_sweep(self, holder: str, seconds: float) -> bool:
        """One reconciler sweeps at a time, across all workers."""
        return bool(self.redis.set(_SWEEP_LOCK, holder, nx=True, px=int(seconds * 1000)))

    def orphans(self) -> dict[str, float]:
        """The jobs the last sweeps found with no task message anywhere, and since when."""
        raw = cast(dict, self.redis.hgetall(_ORPHANS))
        return {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in raw.items()}

    def note_orphans(self, since: dict[str, float]) -> None:
        pipe = self.redis.pipeline()
        pipe.delete(_ORPHANS)
        if since:
            pipe.hset(_ORPHANS, mapping=cast(dict, since))
            pipe.expire(_ORPHANS, self.ttl)
        pipe.execute()
