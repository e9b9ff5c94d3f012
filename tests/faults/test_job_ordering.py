"""What a client sees is what is stored: job state only moves forward, with real Redis and real
worker processes."""

from __future__ import annotations

import threading
import time

import pytest

from tests import redis_db
from tests.conftest import make_stack, stop_process
from tests.faults.test_worker_faults import enroll_jolie, files, post

pytestmark = [pytest.mark.timeout(300), pytest.mark.redis]

DB = 13  # shared with test_worker_faults.py, never at once


@pytest.fixture
def order_stack(tmp_path):
    stack = make_stack(tmp_path, DB)
    yield stack
    if stack.worker:
        stop_process(stack.worker)
    redis_db.flush(redis_db.url_for(DB))


def _drained(client, queue: str, timeout: float = 120) -> None:
    """Wait until no message is queued or taken but not yet acknowledged."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.llen(queue) == 0 and client.hlen("unacked") == 0:
            return
        time.sleep(0.1)
    raise AssertionError("the queue did not drain")


def test_a_duplicate_delivery_of_a_finished_job_changes_nothing(order_stack, faces_dir):
    stack = order_stack
    client = redis_db.client(stack.settings.redis_url)
    job_id = enroll_jolie(stack, faces_dir, "room-d")
    [message] = client.lrange("cpu", 0, -1)  # queued while no worker runs: keep a copy

    stack.worker = stack.start_worker()
    first = stack.wait_for_job(job_id)
    assert first["state"] == "succeeded", first
    _drained(client, "cpu")
    stored = client.get(f"attendance:job:{job_id}")

    client.lpush("cpu", message)  # the broker delivers the same message again
    _drained(client, "cpu")

    assert client.get(f"attendance:job:{job_id}") == stored  # state, result, updated_at
    assert int(client.get(f"attendance:job:{job_id}:attempts")) == 1  # not run a second time
    # The pool process's log lines reach the file a moment after the message is acknowledged.
    log_file = stack.root / "worker-w1.log"
    deadline = time.monotonic() + 30
    while "duplicate delivery ignored" not in log_file.read_text(errors="replace"):
        assert time.monotonic() < deadline, "the worker never said it ignored the duplicate"
        time.sleep(0.2)


def test_concurrent_transitions_never_go_backwards():
    from attendance.domain.errors import AppError
    from attendance.stores.jobs import JobStore, new_job_id

    url = redis_db.fresh_db(DB)
    jobs = JobStore(redis_db.client(url), 3600)
    for _ in range(5):
        job_id = new_job_id()
        jobs.create(job_id, "recognition", 100)
        seen: list[str] = []
        stop = threading.Event()

        def report(job_id: str = job_id, stop: threading.Event = stop) -> None:
            done = 0
            while not stop.is_set():
                done += 1
                jobs.progress(job_id, done % 100)

        def watch(
            job_id: str = job_id, seen: list[str] = seen, stop: threading.Event = stop
        ) -> None:
            while not stop.is_set():
                seen.append(jobs.get(job_id).state)

        threads = [threading.Thread(target=report, daemon=True) for _ in range(3)]
        threads.append(threading.Thread(target=watch, daemon=True))
        for thread in threads:
            thread.start()
        try:
            time.sleep(0.05)
            jobs.succeed(job_id, {"present": ["a"]})
            time.sleep(0.1)
            # Duplicates finishing after the first: neither outcome is stored.
            jobs.succeed(job_id, {"present": ["b"]})
            jobs.fail(job_id, AppError("late duplicate", code="late"))
            time.sleep(0.05)
        finally:
            stop.set()
            for thread in threads:
                thread.join()

        after = seen[seen.index("succeeded") :]
        assert set(after) == {"succeeded"}, "a finished job went back to another state"
        job = jobs.get(job_id)
        assert job.state == "succeeded" and job.result == {"present": ["a"]}
        assert job.progress.done == job.progress.total
        finished_at = job.updated_at
        assert not jobs.progress(job_id, 1)
        assert jobs.get(job_id).updated_at == finished_at

    # A settled face still edits a finished job's result.
    jobs.update_result(job_id, lambda job: job.result.update(present=["a", "c"]))
    assert jobs.get(job_id).result == {"present": ["a", "c"]}
    assert jobs.get(job_id).state == "succeeded"


def test_an_annotated_photo_that_cannot_be_stored_leaves_the_register_and_the_job(
    order_stack, faces_dir
):
    stack = order_stack
    stack.worker = stack.start_worker()
    enrolled = stack.wait_for_job(enroll_jolie(stack, faces_dir, "room-a"))
    assert enrolled["state"] == "succeeded", enrolled
    # Where the annotated photos go is a file: every write under it fails, even as root.
    (stack.root / "store" / "annotated").write_bytes(b"")

    resp = post(
        stack,
        "/api/v1/recognitions",
        {"class_id": "room-a", "date": "2026-11-05", "photos": files([faces_dir / "img5.jpg"])},
    )
    assert resp.status_code == 202, resp.get_json()
    job = stack.wait_for_job(resp.get_json()["job_id"])
    assert job["state"] == "succeeded", job
    assert job["result"]["present"] == ["jolie"]
    [result] = job["result"]["photos"]
    assert result["annotated_key"] is None
    assert "could not be stored" in result["annotation_error"]
    register = stack.client.get("/api/v1/attendance?class_id=room-a&date=2026-11-05").get_json()
    assert [r["student_id"] for r in register["records"]] == ["jolie"]


def test_an_enrollment_whose_last_write_fails_is_reported_failed_and_leaves_nothing(
    order_stack, faces_dir
):
    import sqlite3

    from attendance.domain.keys import is_student_photo, student_photos_prefix
    from attendance.stores.blob import open_blob_store
    from attendance.stores.gallery import GalleryRepository
    from attendance.stores.records import open_records

    stack = order_stack
    records = open_records(stack.settings.records_url, stack.settings)
    # The database refuses the audit entry, the enrollment's last write, after the gallery and
    # the student record were committed.
    with sqlite3.connect(stack.root / "attendance.db") as db:
        db.execute(
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit "
            "WHEN NEW.action = 'enroll' BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
    stack.worker = stack.start_worker()
    job = stack.wait_for_job(enroll_jolie(stack, faces_dir, "room-e"))

    assert job["state"] == "failed", job
    assert records.get_student("jolie") is None
    blobs = open_blob_store(stack.settings.blob_store_url, stack.settings)
    manifest = GalleryRepository(blobs, records).current_manifest()
    assert manifest is None or "jolie" not in manifest.embeddings_per_student()
    # Only the marker the API wrote when it was asked for stays (erasure finds the uploads by it).
    photos = [k for k in blobs.list(student_photos_prefix("jolie")) if is_student_photo(k, "jolie")]
    assert photos == []
    assert [a for a in records.list_audit() if a.action == "enroll"] == []
