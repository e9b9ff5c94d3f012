"""Two real worker processes on the cloud backends (GCS + DynamoDB, emulated over HTTP).

* Enrollments submitted at once, run by both workers, all end up in the gallery: the pointer's
  conditional write in DynamoDB is what GalleryRepository.commit retries on.
* A worker picks up a gallery version another worker committed, without a restart.
* Each worker reports its queues and the device TensorFlow uses; /readyz shows them and says
  when no worker consumes the queue jobs are sent to.

Each worker consumes "cpu" and a queue of its own ("c1", "c2"), so a test can send a task to
one worker in particular.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from attendance.dispatch import (
    ENROLL_TASK,
    RECOGNISE_TASK,
    WORKER_INFO_TASK,
    enqueue,
    make_celery,
    task_queue,
)
from attendance.domain.schemas import EnrollmentRequest, RecognitionRequest, Upload
from attendance.stores.blob import open_blob_store
from attendance.stores.jobs import JobStore, new_job_id
from attendance.stores.records import open_records
from tests import redis_db
from tests.conftest import stop_process
from tests.consent import CONSENT_FORM, give_consent

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

CELEBS = ["ben_afflek", "elton_john", "jerry_seinfeld", "madonna", "mindy_kaling"]


@pytest.fixture(scope="module")
def two_workers(cloud_stack):
    """The cloud stack's worker c1 plus a second one, c2, both with FaceNet loaded."""
    second = cloud_stack.start_worker("c2", queues="cpu,c2")
    celery = make_celery(cloud_stack.settings)
    try:
        infos = {
            name: celery.send_task(WORKER_INFO_TASK, queue=name).get(timeout=300)
            for name in ("c1", "c2")
        }
        yield cloud_stack, celery, infos
    finally:
        stop_process(second)


def photos(paths: list[Path]) -> list[tuple[io.BytesIO, str]]:
    return [(io.BytesIO(p.read_bytes()), p.name) for p in paths]


def train(celeb_dir: Path, person: str, count: int, skip: int = 0) -> list[Path]:
    return sorted((celeb_dir / "train" / person).glob("*.jpg"))[skip : skip + count]


def model(stack) -> dict:
    return stack.client.get("/api/v1/model").get_json()


def worker_log(stack, name: str) -> str:
    return (stack.root / f"worker-{name}.log").read_text(errors="replace")


def test_workers_report_device_and_queues(two_workers):
    stack, celery, infos = two_workers
    for name, info in infos.items():
        assert info["hostname"].startswith(f"{name}@")
        assert set(info["queues"]) == {"cpu", name}
        # FaceNetEmbedder.device: this machine has no GPU, a GPU worker would say "GPU".
        assert info["device"] == ("GPU" if info["gpus"] else "CPU")
        # embed_engine "auto": OpenVINO where TensorFlow sees no GPU.
        assert info["engine"] == ("tensorflow" if info["gpus"] else "openvino")
        assert (info["blob_store"], info["records"]) == ("gs", "dynamodb")
        assert f"FaceNet on {info['device']} with {info['engine']}" in worker_log(stack, name)

    resp = stack.client.get("/readyz")
    body = resp.get_json()
    assert resp.status_code == 200, body
    assert set(body["checks"].values()) == {"ok"}
    shown = {w["name"].split("@")[0]: w for w in body["workers"]}
    assert {"c1", "c2"} <= set(shown)
    for name in ("c1", "c2"):
        assert shown[name]["device"] == infos[name]["device"]
        assert shown[name]["engine"] == infos[name]["engine"]
        assert set(shown[name]["queues"]) == {"cpu", name}


def test_jobs_go_to_the_gpu_queue_when_gpu_workers_are_configured(two_workers):
    """With gpu_workers on, jobs are sent to "gpu"; these workers consume only "cpu", so the
    API is not ready and says why."""
    from attendance.web.app import create_app

    stack, _celery, _infos = two_workers
    settings = stack.settings.model_copy(update={"gpu_workers": True})
    assert settings.resolved_task_queue == "gpu"
    app = create_app(settings)
    assert task_queue(app.extensions["attendance"].celery) == "gpu"
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 503
    assert "no worker consumes the 'gpu' queue" in resp.get_json()["checks"]["workers"]


def test_enrollments_submitted_at_once_to_two_workers_all_end_up_in_the_gallery(
    two_workers, celeb_dir
):
    stack, _celery, _infos = two_workers
    before = model(stack)
    students = {
        f"race-{i}": train(celeb_dir, CELEBS[i % 5], 2, skip=2 * (i // 5)) for i in range(6)
    }
    job_ids = {}
    for sid, paths in students.items():  # queued back to back, before any has finished
        resp = stack.client.post(
            "/api/v1/students",
            data={
                "student_id": sid,
                "name": sid,
                "class_id": "race",
                "photos": photos(paths),
                **CONSENT_FORM,
            },
            content_type="multipart/form-data",
        )
        assert resp.status_code == 202, resp.get_json()
        job_ids[sid] = resp.get_json()["job_id"]
    jobs = {sid: stack.wait_for_job(job_id) for sid, job_id in job_ids.items()}
    assert all(job["state"] == "succeeded" for job in jobs.values()), jobs

    after = model(stack)
    accepted = sum(job["result"]["accepted_photos"] for job in jobs.values())
    assert after["version"] == before["version"] + 6
    assert after["embeddings"] == before["embeddings"] + accepted
    # Every enrollment made its own version: none was lost to another's commit.
    versions = sorted(job["result"]["model_version"] for job in jobs.values())
    assert versions == list(range(before["version"] + 1, before["version"] + 7))
    listed = stack.client.get("/api/v1/students?class_id=race").get_json()["students"]
    assert {s["student_id"]: s["embeddings"] for s in listed} == {
        sid: job["result"]["accepted_photos"] for sid, job in jobs.items()
    }
    # Both workers took part.
    for name in ("c1", "c2"):
        assert any(job_id in worker_log(stack, name) for job_id in job_ids.values()), name


def test_a_worker_picks_up_versions_another_worker_committed_without_restart(
    two_workers, celeb_dir
):
    stack, celery, infos = two_workers
    blobs = open_blob_store(stack.settings.blob_store_url, stack.settings)
    jobs = JobStore(redis_db.client(stack.settings.redis_url), 3600)

    def run(kind, task, queue, make_request, paths):
        job_id = new_job_id()
        uploads = []
        for i, path in enumerate(paths):
            key = f"uploads/{job_id}/{i:03d}.jpg"
            blobs.put(key, path.read_bytes(), "image/jpeg")
            uploads.append(Upload(key=key, filename=path.name))
        jobs.create(job_id, kind, len(paths))
        enqueue(
            celery, task, make_request(job_id, uploads).model_dump(mode="json"), job_id, queue=queue
        )
        done = stack.wait_for_job(job_id)
        assert done["state"] == "succeeded", done
        return done["result"]

    def enroll(queue, sid, person):
        give_consent(open_records(stack.settings.records_url, stack.settings), sid)
        return run(
            "enrollment",
            ENROLL_TASK,
            queue,
            lambda job_id, up: EnrollmentRequest(
                job_id=job_id,
                student_id=sid,
                name=person,
                class_id="swap",
                photos=up,
            ),
            train(celeb_dir, person, 3),
        )

    def recognise(queue, person):
        val = sorted((celeb_dir / "val" / person).glob("*.jpg"))[:1]
        return run(
            "recognition",
            RECOGNISE_TASK,
            queue,
            lambda job_id, up: RecognitionRequest(
                job_id=job_id,
                class_id="swap",
                date="2026-11-05",
                photos=up,
            ),
            val,
        )

    # Both workers have the current version cached.
    seen = {q: recognise(q, "ben_afflek")["model_version"] for q in ("c1", "c2")}
    assert seen["c1"] == seen["c2"]

    v1 = enroll("c1", "swap-ben", "ben_afflek")["model_version"]
    got = recognise("c2", "ben_afflek")
    assert got["present"] == ["swap-ben"] and got["model_version"] >= v1

    v2 = enroll("c2", "swap-madonna", "madonna")["model_version"]
    got = recognise("c1", "madonna")
    assert got["present"] == ["swap-madonna"] and got["model_version"] >= v2

    # Same processes throughout: nothing was restarted to see the new versions.
    for name in ("c1", "c2"):
        info = celery.send_task(WORKER_INFO_TASK, queue=name).get(timeout=60)
        assert info["pid"] == infos[name]["pid"]
