"""The reconciler's rules, one sweep at a time: real Redis for the jobs and their leases, the
blob store on disk, and a broker whose contents each test sets (the real broker's view is
read in tests/faults/test_lost_jobs.py, with real workers, web and Redis processes)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from attendance.domain.keys import upload_key
from attendance.domain.queue import BrokerView, Delivery
from attendance.services.reconcile import reconcile
from attendance.stores.blob import open_blob_store
from attendance.stores.jobs import JobStore, StoredTask, new_holder, new_job_id
from tests import redis_db
from tests.fakes import settings_for

pytestmark = pytest.mark.redis

DB = 12  # no worker-backed suite uses it
LEASE = 30.0
GRACE = 180.0
INTERVAL = 10.0


class Broker:
    def __init__(self):
        self.waiting: set[str] = set()
        self.delivered: dict[str, Delivery] = {}
        self.redelivered: list[str] = []
        self.sent: list[tuple[str, str, dict, str | None]] = []

    def view(self) -> BrokerView:
        return BrokerView(frozenset(self.waiting), dict(self.delivered))

    def redeliver(self, tag: str) -> None:
        self.redelivered.append(tag)

    def send(self, job_id, name, payload, queue) -> None:
        self.sent.append((job_id, name, payload, queue))


@pytest.fixture
def world(tmp_path):
    jobs = JobStore(redis_db.client(redis_db.fresh_db(DB)), 3600)
    settings = settings_for(
        tmp_path,
        job_lease_seconds=LEASE,
        submission_grace_seconds=GRACE,
        reconcile_interval_seconds=INTERVAL,
    )
    blobs = open_blob_store(settings.blob_store_url, settings)
    broker = Broker()

    def sweep(now: float):
        return reconcile(jobs, broker, lambda: blobs, settings, now=now)

    return jobs, broker, blobs, sweep


def running_job(jobs: JobStore, task: bool = True) -> str:
    job_id = new_job_id()
    jobs.create(job_id, "recognition", 3, class_id="c")
    jobs.progress(job_id, 1)
    if task:
        jobs.remember_task(job_id, StoredTask("attendance.recognize", {"job_id": job_id}, "cpu"))
    return job_id


def test_a_leased_or_waiting_job_is_left_alone(world):
    jobs, broker, _, sweep = world
    leased, waiting = running_job(jobs), running_job(jobs)
    assert jobs.take_lease(leased, new_holder(), LEASE) is None
    broker.waiting.add(waiting)
    later = time.time() + 10 * GRACE
    for now in (later, later + INTERVAL, later + 2 * INTERVAL):
        swept = sweep(now)
        assert (swept.redelivered, swept.resent, swept.failed) == ([], [], [])
    assert not broker.sent and not broker.redelivered


def test_a_taken_message_without_a_live_run_goes_back_once_a_lease_has_passed(world):
    jobs, broker, _, sweep = world
    job_id = running_job(jobs)
    taken = time.time()
    broker.delivered[job_id] = Delivery(tag="tag-1", at=taken)
    assert sweep(taken + LEASE / 2).redelivered == []  # its worker may still be starting it
    assert sweep(taken + LEASE).redelivered == [job_id]
    assert broker.redelivered == ["tag-1"] and not broker.sent


def test_a_lease_of_a_dead_process_of_this_host_counts_as_lapsed(world):
    jobs, broker, _, sweep = world
    job_id = running_job(jobs)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    holder = new_holder().split(":")
    holder[1] = dead.stdout.strip()
    assert jobs.take_lease(job_id, ":".join(holder), LEASE) is None
    assert jobs.leased([job_id]) == set()
    broker.delivered[job_id] = Delivery(tag="t", at=time.time() - LEASE)
    assert sweep(time.time()).redelivered == [job_id]
    # ... and a new run takes it over at once.
    assert jobs.take_lease(job_id, new_holder(), LEASE) is None


def test_a_started_job_whose_message_is_gone_is_sent_again_on_the_second_sweep(world):
    jobs, broker, _, sweep = world
    job_id = running_job(jobs)
    now = time.time()
    assert sweep(now).resent == []  # a message is in neither place while a worker takes it
    assert sweep(now + INTERVAL).resent == [job_id]
    assert broker.sent == [(job_id, "attendance.recognize", {"job_id": job_id}, "cpu")]
    assert jobs.get(job_id).state == "running"


def test_a_job_never_enqueued_fails_after_the_grace_and_its_photos_go(world):
    jobs, _, blobs, sweep = world
    job_id = new_job_id()
    jobs.create(job_id, "recognition", 2, class_id="c")
    for index in (0, 1):
        blobs.put(upload_key(job_id, index, "jpg"), b"photo", "image/jpeg")
    created = jobs.get(job_id).created_at.timestamp()
    assert sweep(created + GRACE / 2).failed == []  # the API may still be storing its photos
    assert sweep(created + GRACE).failed == []  # seen once without a message: not yet
    assert sweep(created + GRACE + INTERVAL).failed == [job_id]
    job = jobs.get(job_id)
    assert job.state == "failed" and job.error.code == "submission_interrupted"
    assert blobs.list(f"uploads/{job_id}/") == []
    assert jobs.open_jobs() == []


def test_a_queued_job_whose_message_is_lost_is_sent_again_from_its_copy(world):
    jobs, broker, _, sweep = world
    job_id = new_job_id()
    jobs.create(job_id, "recognition", 1, class_id="c")
    jobs.remember_task(job_id, StoredTask("attendance.recognize", {"job_id": job_id}, "cpu"))
    created = jobs.get(job_id).created_at.timestamp()
    assert sweep(created + GRACE / 2).resent == []
    sweep(created + GRACE)
    assert sweep(created + GRACE + INTERVAL).resent == [job_id]
    assert jobs.get(job_id).state == "queued"


def test_a_started_job_with_no_task_to_send_fails_saying_its_worker_was_lost(world):
    jobs, _, _, sweep = world
    job_id = running_job(jobs, task=False)
    now = time.time()
    sweep(now)
    assert sweep(now + INTERVAL).failed == [job_id]
    assert jobs.get(job_id).error.code == "worker_lost"


def test_finished_jobs_leave_the_open_set_and_their_task_copy_goes(world):
    jobs, _, _, _ = world
    job_id = running_job(jobs)
    assert [j.job_id for j in jobs.open_jobs()] == [job_id]
    jobs.succeed(job_id, {})
    assert jobs.open_jobs() == [] and jobs.stored_task(job_id) is None


def test_leases_are_held_renewed_handed_to_a_retry_and_released():
    jobs = JobStore(redis_db.client(redis_db.fresh_db(DB)), 3600)
    job_id = running_job(jobs)
    first, second = new_holder(), new_holder()
    assert jobs.take_lease(job_id, first, 5) is None
    assert jobs.take_lease(job_id, second, 5) == first  # a live run holds it
    assert jobs.renew_lease(job_id, first, 5) and not jobs.renew_lease(job_id, second, 5)
    assert jobs.hand_over_lease(job_id, first, 5)
    assert jobs.leased([job_id]) == {job_id}  # kept for the retry ...
    assert jobs.take_lease(job_id, second, 5) is None  # ... which takes it
    jobs.release_lease(job_id, first)  # not the holder any more: nothing happens
    assert jobs.leased([job_id]) == {job_id}
    jobs.release_lease(job_id, second)
    assert jobs.leased([job_id]) == set()
