"""The reconciler's timer, in every worker's main process (attendance.services.reconcile).

It runs in the main process, not as a task, so that it sweeps while every pool process is
busy and however long the queues are; one worker sweeps at a time (a lock in Redis).
"""

from __future__ import annotations

import logging
from functools import cache

from celery import Celery, bootsteps
from celery.worker import state

from attendance.config.settings import get_settings
from attendance.dispatch import (
    CPU_QUEUE,
    GPU_QUEUE,
    JOB_TASKS,
    broker_view,
    enqueue,
    redeliver,
)
from attendance.domain.queue import BrokerView
from attendance.services.reconcile import reconcile
from attendance.stores.blob import BlobStore, open_blob_store
from attendance.stores.jobs import JobStore, new_holder

log = logging.getLogger(__name__)


class CeleryBroker:
    def __init__(self, app: Celery, queues: list[str]):
        self.app, self.queues = app, queues

    def view(self) -> BrokerView:
        return broker_view(self.app, self.queues)

    def redeliver(self, tag: str) -> None:
        redeliver(self.app, tag)

    def send(self, job_id: str, name: str, payload: dict, queue: str | None) -> None:
        enqueue(self.app, name, payload, job_id, queue=queue)


class Reconciler(bootsteps.StartStopStep):
    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.tref = None

    def start(self, worker) -> None:
        settings = get_settings()
        consumed = [q.name for q in worker.app.amqp.queues.consume_from.values()]
        self.broker = CeleryBroker(worker.app, sorted({CPU_QUEUE, GPU_QUEUE, *consumed}))
        self.jobs = JobStore.from_url(settings.redis_url, settings.job_ttl_seconds)
        self.holder = new_holder()
        self.interval = settings.reconcile_interval_seconds
        self.tref = worker.timer.call_repeatedly(self.interval, self.sweep, priority=10)

    def sweep(self) -> None:
        settings = get_settings()
        try:
            # The jobs whose messages this worker holds (running, waiting for a pool process,
            # or for a retry's countdown) are not lost, however long they wait.
            held = [r.id for r in _requests() if r.name in JOB_TASKS]
            if held:
                self.jobs.hold(held, self.holder, settings.job_lease_seconds)
            if self.jobs.take_sweep(self.holder, self.interval * 0.9):
                reconcile(self.jobs, self.broker, _blob_store, settings)
        except Exception:  # Redis down, most likely: the next sweep tries again
            log.warning("reconciler: this sweep failed", exc_info=True)

    def stop(self, worker) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None


def _requests() -> set:
    return {*state.reserved_requests, *state.active_requests, *state.scheduled_requests}


@cache
def _blob_store() -> BlobStore:
    settings = get_settings()
    return open_blob_store(settings.blob_store_url, settings)
