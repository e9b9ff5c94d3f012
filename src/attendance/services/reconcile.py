"""Jobs whose worker, task message or submission was lost: put back on their queue, sent
again, or failed with a reason a client can read (README, "Reliability").

A run of a job's task holds the job's lease and renews it (attendance.worker.lease); every
worker marks the jobs whose messages it holds (attendance.worker.reconciler). A job not
finished, not leased and not marked is looked for in the broker:

* its message waits in a queue: nothing to do;
* a worker took its message and, a lease's time later, neither holds it nor runs it: that
  worker is gone (its main process killed), so the message goes back on its queue;
* no message anywhere, seen so in two sweeps (a message is in neither place for an instant
  while a worker takes it), the job running or still queued past the submission grace: it is
  sent again from the copy of its task the API stored before enqueueing it (the message was
  dropped when Redis failed under its run, or lost with Redis's last second); with no copy it
  was never enqueued (the API stopped while storing its photos): it fails with
  ``submission_interrupted`` and its photos are deleted.

Every run counts an attempt, so a job that keeps losing its worker still fails after
``task_max_attempts``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from attendance.config.settings import Settings
from attendance.domain.errors import AppError
from attendance.domain.keys import upload_prefix
from attendance.domain.queue import BrokerView
from attendance.domain.schemas import JobView
from attendance.stores.blob import BlobStore
from attendance.stores.jobs import JobStore

log = logging.getLogger(__name__)


class SubmissionInterrupted(AppError):
    code = "submission_interrupted"


class WorkerLost(AppError):
    code = "worker_lost"


class Broker(Protocol):
    def view(self) -> BrokerView: ...

    def redeliver(self, tag: str) -> None: ...

    def send(self, job_id: str, name: str, payload: dict, queue: str | None) -> None: ...


@dataclass
class Sweep:
    redelivered: list[str] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def reconcile(
    jobs: JobStore,
    broker: Broker,
    blobs: Callable[[], BlobStore],
    settings: Settings,
    now: float | None = None,
) -> Sweep:
    """One sweep over the open jobs; ``blobs`` opens the blob store when photos are to go."""
    now = time.time() if now is None else now
    sweep = Sweep()
    open_jobs = jobs.open_jobs()
    leased = jobs.leased(job.job_id for job in open_jobs)
    idle = [job for job in open_jobs if job.job_id not in leased]
    seen_before = jobs.orphans()
    orphans: dict[str, float] = {}
    view = broker.view() if idle else BrokerView(frozenset(), {})
    for job in idle:
        if job.job_id in view.waiting:
            continue
        delivery = view.delivered.get(job.job_id)
        if delivery is not None:
            # The worker has had a lease's time to start it: a run would hold the lease.
            if now - delivery.at >= settings.job_lease_seconds:
                log.warning(
                    "job %s: the worker that took it stopped; it is back on its queue",
                    job.job_id,
                )
                broker.redeliver(delivery.tag)
                sweep.redelivered.append(job.job_id)
            continue
        if job.state == "queued" and (
            now - job.created_at.timestamp() < settings.submission_grace_seconds
        ):
            continue
        since = seen_before.get(job.job_id, now)
        if now - since < settings.reconcile_interval_seconds / 2 or jobs.leased([job.job_id]):
            orphans[job.job_id] = since
            continue
        _recover(jobs, broker, blobs, job, sweep)
    jobs.note_orphans(orphans)
    return sweep


def _recover(
    jobs: JobStore,
    broker: Broker,
    blobs: Callable[[], BlobStore],
    job: JobView,
    sweep: Sweep,
) -> None:
    task = jobs.stored_task(job.job_id)
    if task is not None:
        log.warning("job %s: its task message was lost; it is sent again", job.job_id)
        broker.send(job.job_id, task.name, task.payload, task.queue)
        sweep.resent.append(job.job_id)
    elif job.state == "queued":
        interrupted = SubmissionInterrupted(
            "the job was never queued: the service stopped while accepting its photos, and "
            "they were deleted; submit them again"
        )
        if jobs.fail(job.job_id, interrupted):
            log.warning("job %s was never queued; failed and its uploads deleted", job.job_id)
            store = blobs()
            for key in store.list(upload_prefix(job.job_id)):
                store.delete(key)
            sweep.failed.append(job.job_id)
    elif jobs.fail(
        job.job_id,
        WorkerLost(
            "the worker running the job stopped and its task could not be recovered; "
            "submit the photos again"
        ),
    ):
        sweep.failed.append(job.job_id)
