"""Faults with real processes: a worker killed mid-job, Redis restarted, poison messages."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis

from tests import redis_db
from tests.conftest import make_stack, stop_process
from tests.consent import CONSENT_FORM
from tests.emulators import free_port

pytestmark = pytest.mark.timeout(600)


def files(paths):
    return [(io.BytesIO(Path(p).read_bytes()), Path(p).name) for p in paths]


def post(stack, url, data):
    return stack.client.post(url, data=data, content_type="multipart/form-data")


def enroll_jolie(stack, faces_dir, class_id):
    resp = post(
        stack,
        "/api/v1/students",
        {
            "student_id": "jolie",
            "name": "Angelina Jolie",
            "class_id": class_id,
            "photos": files([faces_dir / "img2.jpg", faces_dir / "img4.jpg"]),
            **CONSENT_FORM,
        },
    )
    assert resp.status_code == 202, resp.get_json()
    return resp.get_json()["job_id"]


def pool_children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


@pytest.fixture
def fault_stack(tmp_path):
    stack = make_stack(tmp_path, 13)
    yield stack
    if stack.worker:
        stop_process(stack.worker)
    redis_db.flush(redis_db.url_for(13))


def test_worker_killed_mid_job_is_redelivered_and_records_once(fault_stack, faces_dir, celeb_dir):
    stack = fault_stack
    stack.worker = stack.start_worker()
    job = stack.wait_for_job(enroll_jolie(stack, faces_dir, "room-k"))
    assert job["state"] == "succeeded", job

    # A long job: the jolie photo among many strangers, so it is still running when killed.
    photos = [faces_dir / "img5.jpg"] + sorted((celeb_dir / "val").glob("*/*.jpg"))
    resp = post(
        stack,
        "/api/v1/recognitions",
        {"class_id": "room-k", "date": "2026-11-05", "photos": files(photos)},
    )
    job_id = resp.get_json()["job_id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        view = stack.client.get(f"/api/v1/jobs/{job_id}").get_json()
        if view["state"] == "running" and view["progress"]["done"] >= 2:
            break
        time.sleep(0.05)
    assert view["state"] == "running", view
    children = pool_children(stack.worker.pid)
    assert len(children) == 1
    os.kill(children[0], signal.SIGKILL)  # what the kernel's OOM killer would do

    done = stack.wait_for_job(job_id, timeout=300)
    assert done["state"] == "succeeded", done
    assert done["result"]["present"] == ["jolie"]
    assert pool_children(stack.worker.pid) != children  # a new pool process ran it again
    records = stack.client.get("/api/v1/attendance?class_id=room-k&date=2026-11-05").get_json()
    assert [r["student_id"] for r in records["records"]] == ["jolie"]
    attempts = redis_db.client(stack.settings.redis_url).get(f"attendance:job:{job_id}:attempts")
    assert int(attempts) == 2


def test_poison_messages_fail_their_job_and_do_not_block_the_queue(fault_stack, faces_dir):
    from attendance.dispatch import ENROLL_TASK, RECOGNISE_TASK, enqueue, make_celery
    from attendance.stores.jobs import JobStore, new_job_id
    from attendance.stores.records import open_records
    from tests.consent import give_consent

    stack = fault_stack
    stack.worker = stack.start_worker()
    jobs = JobStore(redis_db.client(stack.settings.redis_url), 3600)
    celery = make_celery(stack.settings)

    # A message that can never be valid.
    bad = new_job_id()
    jobs.create(bad, "recognition", 1)
    enqueue(celery, RECOGNISE_TASK, {"job_id": bad, "class_id": "x", "photos": "nope"}, bad)
    # A job whose earlier attempts all died with their worker.
    dead = new_job_id()
    jobs.create(dead, "enrollment", 1)
    for _ in range(stack.settings.task_max_attempts):
        jobs.count_attempt(dead)
    enqueue(
        celery,
        ENROLL_TASK,
        {
            "job_id": dead,
            "student_id": "s",
            "name": "S",
            "photos": [{"key": "uploads/x/000.jpg", "filename": "a"}],
        },
        dead,
    )
    # A message naming an upload that is not there (of a student whose consent is on record).
    give_consent(open_records(stack.settings.records_url), "s")
    missing = new_job_id()
    jobs.create(missing, "enrollment", 1)
    enqueue(
        celery,
        ENROLL_TASK,
        {
            "job_id": missing,
            "student_id": "s",
            "name": "S",
            "photos": [{"key": f"uploads/{missing}/000.jpg", "filename": "gone.jpg"}],
        },
        missing,
    )

    assert stack.wait_for_job(bad)["error"]["code"] == "invalid_message"
    assert stack.wait_for_job(dead)["error"]["code"] == "too_many_attempts"
    failed = stack.wait_for_job(missing)
    assert failed["state"] == "failed" and "uploads/" in failed["error"]["message"]
    # The queue still flows.
    ok = stack.wait_for_job(enroll_jolie(stack, faces_dir, "room-p"))
    assert ok["state"] == "succeeded", ok


def start_redis(port: int, data_dir: Path, appendfsync: str = "everysec") -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            appendfsync,
            "--dir",
            str(data_dir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis_db.client(f"redis://127.0.0.1:{port}/0")
    for _ in range(100):
        try:
            if client.ping():
                return proc
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_redis_restart_loses_no_queued_job_and_api_says_503_meanwhile(tmp_path, faces_dir):
    port = free_port()
    data = tmp_path / "redis"
    data.mkdir()
    server = start_redis(port, data)
    try:
        stack = make_stack(tmp_path, 0, redis_url=f"redis://127.0.0.1:{port}/0")
        # Queued while no worker runs.
        job_id = enroll_jolie(stack, faces_dir, "room-r")
        assert redis_db.client(stack.settings.redis_url).llen("cpu") == 1

        # The AOF already holds the writes.
        redis_db.client(stack.settings.redis_url).shutdown(nosave=True)
        server.wait(timeout=10)
        started = time.monotonic()
        resp = post(
            stack,
            "/api/v1/students",
            {
                "student_id": "x",
                "name": "X",
                "photos": files([faces_dir / "img2.jpg"]),
                **CONSENT_FORM,
            },
        )
        assert resp.status_code == 503, resp.get_json()
        assert resp.get_json()["error"]["code"] == "service_unavailable"
        ready = stack.client.get("/readyz")
        assert ready.status_code == 503 and ready.get_json()["checks"]["redis"] != "ok"
        assert time.monotonic() - started < 15
        uploads = stack.root / "store" / "uploads"
        assert sorted(p.name for p in uploads.iterdir()) == [job_id]  # the 503 stored nothing

        server = start_redis(port, data)
        assert stack.client.get(f"/api/v1/jobs/{job_id}").get_json()["state"] == "queued"
        stack.worker = stack.start_worker()
        done = stack.wait_for_job(job_id)
        assert done["state"] == "succeeded", done
        stop_process(stack.worker)
    finally:
        server.terminate()
        server.wait(timeout=10)
