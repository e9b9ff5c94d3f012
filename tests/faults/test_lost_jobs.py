"""Jobs whose worker, task message or submission is lost, with real processes: the worker's
main process killed mid-job, Redis killed mid-job, the web killed between storing a job's
photos and enqueueing its task. After each, the job ends (succeeded, or failed with a reason)
within the bound the README states ("Reliability") for the settings below, and its attendance
is written once.

The reconciler runs in the worker's main process (attendance.worker.reconciler); Redis is a
server of the test's own, with an append-only file, so that it can be killed and restarted.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import make_stack, stop_process
from tests.emulators import free_port
from tests.faults.test_store_faults import photo_files, start_web, wait_until
from tests.faults.test_worker_faults import enroll_jolie, files, pool_children, post, start_redis

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

SETTINGS = {
    "job_lease_seconds": 3,
    "reconcile_interval_seconds": 1,
    "submission_grace_seconds": 4,
    "task_retry_backoff_seconds": 1,
}
# The longest the long job below takes here once running, generously.
RUN_SECONDS = 60
# README: a job whose worker or message was lost is back on its queue within a lease and two
# sweeps of a worker running again (of Redis answering again).
RECOVERY = SETTINGS["job_lease_seconds"] + 2 * SETTINGS["reconcile_interval_seconds"]
# README: a submission cut short fails within the grace and two sweeps.
INTERRUPTED = SETTINGS["submission_grace_seconds"] + 2 * SETTINGS["reconcile_interval_seconds"]
# A worker's start (TensorFlow and FaceNet loading), generously.
WORKER_START = 90


class Lost:
    def __init__(self, root: Path):
        self.root = root
        self.port = free_port()
        self.redis_dir = root / "redis"
        self.redis_dir.mkdir()
        self.redis = start_redis(self.port, self.redis_dir, appendfsync="always")
        self.stack = make_stack(root, 0, redis_url=f"redis://127.0.0.1:{self.port}/0", **SETTINGS)
        self.stack.worker = self.stack.start_worker()

    def restart_redis(self) -> None:
        self.redis = start_redis(self.port, self.redis_dir, appendfsync="always")

    def long_job(self, faces_dir: Path, celeb_dir: Path, date: str) -> str:
        """A recognition of Jolie's photo among strangers' that runs for several seconds,
        once it is running."""
        photos = [faces_dir / "img5.jpg"] + sorted((celeb_dir / "val").glob("*/*.jpg"))[:12]
        resp = post(
            self.stack,
            "/api/v1/recognitions",
            {"class_id": "room-l", "date": date, "photos": files(photos)},
        )
        assert resp.status_code == 202, resp.get_json()
        job_id = resp.get_json()["job_id"]
        wait_until(
            lambda: self.job(job_id)["progress"]["done"] >= 1,
            WORKER_START + RUN_SECONDS,
            "the long job running",
        )
        assert self.job(job_id)["state"] == "running"
        return job_id

    def job(self, job_id: str) -> dict:
        return self.stack.client.get(f"/api/v1/jobs/{job_id}").get_json()

    def marked(self, date: str) -> list[str]:
        url = f"/api/v1/attendance?class_id=room-l&date={date}"
        return [r["student_id"] for r in self.stack.client.get(url).get_json()["records"]]

    def attempts(self, job_id: str) -> int:
        return int(self.stack_redis().get(f"attendance:job:{job_id}:attempts") or 0)

    def stack_redis(self):
        from tests import redis_db

        return redis_db.client(self.stack.settings.redis_url)

    def assert_gallery_matches_students(self) -> None:
        from attendance.stores.blob import open_blob_store
        from attendance.stores.gallery import GalleryRepository
        from attendance.stores.records import open_records

        settings = self.stack.settings
        records = open_records(settings.records_url, settings)
        blobs = open_blob_store(settings.blob_store_url, settings)
        manifest = GalleryRepository(blobs, records).current_manifest()
        assert manifest is not None
        assert manifest.embeddings_per_student() == {"jolie": 2}
        assert [s.student_id for s in records.list_students()] == ["jolie"]

    def worker_logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.root.glob("worker-*.log"))


@pytest.fixture(scope="module")
def lost(tmp_path_factory, faces_dir):
    world = Lost(tmp_path_factory.mktemp("lost"))
    try:
        job = world.stack.wait_for_job(enroll_jolie(world.stack, faces_dir, "room-l"))
        assert job["state"] == "succeeded", job
        yield world
    finally:
        if world.stack.worker is not None:
            stop_process(world.stack.worker)
        world.redis.terminate()
        world.redis.wait(timeout=10)


def cut_short(lost: Lost, faces_dir: Path, at: str, date: str) -> tuple[str, float]:
    """Submit a recognition to a gunicorn whose worker stops at step ``at`` of the submission
    (tests/faults/gunicorn_stall_enqueue.py), and SIGKILL that worker there; the job's id
    and when it was killed."""
    marker = lost.root / f"stalled-{at}"
    web = start_web(
        lost.root,
        {**lost.stack.env, "STALL_MARKER": str(marker), "STALL_AT": at},
        args=("-c", str(Path(__file__).with_name("gunicorn_stall_enqueue.py"))),
    )
    try:
        answers: list = []

        def submit() -> None:
            try:
                answers.append(
                    web.request(
                        "POST",
                        "/api/v1/recognitions",
                        data={"class_id": "room-l", "date": date},
                        files=photo_files(faces_dir, "img5.jpg", "img6.jpg"),
                    )
                )
            except requests.RequestException as exc:
                answers.append(exc)

        client = threading.Thread(target=submit)
        client.start()
        wait_until(marker.exists, 60, f"the web worker reaching {at}")
        pid, job_id = marker.read_text().split()
        os.kill(int(pid), signal.SIGKILL)
        killed = time.monotonic()
        client.join(timeout=60)
        # The client never heard of the job: its connection was cut.
        assert len(answers) == 1 and not isinstance(answers[0], requests.Response), answers
        uploads = lost.root / "store" / "uploads" / job_id
        assert len(list(uploads.iterdir())) == 2  # stored, and no task message
        assert lost.job(job_id)["state"] == "queued"
        return job_id, killed
    finally:
        stop_process(web.proc)


def test_a_submission_cut_short_before_its_task_was_stored_fails_and_its_photos_go(lost, faces_dir):
    job_id, killed = cut_short(lost, faces_dir, "remember_task", "2026-11-20")

    wait_until(lambda: lost.job(job_id)["state"] == "failed", INTERRUPTED + 15, "the job failing")
    assert time.monotonic() - killed <= INTERRUPTED + 15
    assert lost.job(job_id)["error"]["code"] == "submission_interrupted"
    uploads = lost.root / "store" / "uploads" / job_id
    assert not uploads.exists() or list(uploads.iterdir()) == []
    assert lost.marked("2026-11-20") == []
    lost.assert_gallery_matches_students()


def test_a_submission_cut_short_before_its_message_was_sent_is_sent_again(lost, faces_dir):
    job_id, killed = cut_short(lost, faces_dir, "enqueue", "2026-11-19")

    done = lost.stack.wait_for_job(job_id, timeout=INTERRUPTED + RUN_SECONDS)
    assert done["state"] == "succeeded", done
    assert time.monotonic() - killed <= INTERRUPTED + RUN_SECONDS
    assert done["result"]["present"] == ["jolie"]
    assert lost.marked("2026-11-19") == ["jolie"]
    assert "sent again" in lost.worker_logs()
    lost.assert_gallery_matches_students()


def test_a_job_running_when_redis_dies_finishes_after_redis_returns(lost, faces_dir, celeb_dir):
    date = "2026-11-21"
    job_id = lost.long_job(faces_dir, celeb_dir, date)
    lost.redis.kill()  # SIGKILL: the append-only file has every acknowledged write
    lost.redis.wait(timeout=10)
    time.sleep(2)  # the job's next write fails, and so does its retry's publishing
    lost.restart_redis()
    back = time.monotonic()

    done = lost.stack.wait_for_job(job_id, timeout=RECOVERY + RUN_SECONDS + 30)
    assert done["state"] == "succeeded", done
    assert time.monotonic() - back <= RECOVERY + RUN_SECONDS + 30
    assert done["result"]["present"] == ["jolie"]
    assert lost.marked(date) == ["jolie"]  # written once
    assert lost.attempts(job_id) >= 2
    lost.assert_gallery_matches_students()


def test_a_job_whose_worker_main_process_dies_finishes_on_the_next_worker(
    lost, faces_dir, celeb_dir
):
    date = "2026-11-22"
    job_id = lost.long_job(faces_dir, celeb_dir, date)
    main = lost.stack.worker
    children = pool_children(main.pid)
    assert children
    os.kill(main.pid, signal.SIGKILL)
    main.wait(timeout=10)
    lost.stack.worker = None

    def children_gone() -> bool:  # they die with their parent (Celery sets PR_SET_PDEATHSIG)
        return not any(Path(f"/proc/{pid}").exists() for pid in children)

    wait_until(children_gone, 10, "the pool processes dying with their parent")
    time.sleep(1)
    assert lost.job(job_id)["state"] == "running"  # as left: nobody is running it

    lost.stack.worker = lost.stack.start_worker("w2")
    restarted = time.monotonic()
    done = lost.stack.wait_for_job(job_id, timeout=WORKER_START + RECOVERY + RUN_SECONDS)
    assert done["state"] == "succeeded", done
    assert time.monotonic() - restarted <= WORKER_START + RECOVERY + RUN_SECONDS
    assert done["result"]["present"] == ["jolie"]
    assert lost.marked(date) == ["jolie"]
    assert lost.attempts(job_id) == 2
    assert "back on its queue" in lost.worker_logs()
    lost.assert_gallery_matches_students()
