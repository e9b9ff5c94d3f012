"""Faults on the cloud backends, through the API and a real worker process.

* A missing bucket or table (creation off), or an emulator that is down: /readyz answers 503
  quickly and says which; requests that need the store answer 503 store_unavailable naming it
  and leave nothing behind.
* A job whose store fails fails with that clear error, after a retry when the failure may pass,
  and writes nothing half: no gallery object, no pointer to a version not wholly stored.

The worker here has a DynamoDB of its own (a second moto server) so a test can delete a table
or stop the server without disturbing other tests.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import boto3
import pytest

from attendance.config.settings import Settings
from attendance.dispatch import ENROLL_TASK, enqueue, make_celery
from attendance.domain.schemas import EnrollmentRequest, Upload
from attendance.stores.blob import open_blob_store
from attendance.stores.jobs import JobStore, new_job_id
from attendance.stores.records.dynamodb import DynamoRecords
from attendance.web.app import create_app
from tests import redis_db, tokens
from tests.conftest import DEEPFACE_HOME, make_stack, redis_url_for, stop_process
from tests.consent import CONSENT_FORM, give_consent
from tests.emulators import REGION, MotoDynamoDB, dead_endpoint, unique

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

FAULT_REDIS_DB = 10
API_REDIS_DB = 9
TABLE_PREFIX = "faults"


def photos(*paths: Path):
    return [(io.BytesIO(p.read_bytes()), p.name) for p in paths]


def enroll(client, faces_dir, student_id="jolie"):
    return client.post(
        "/api/v1/students",
        data={
            "student_id": student_id,
            "name": "Angelina Jolie",
            "class_id": "room-f",
            "photos": photos(faces_dir / "img2.jpg", faces_dir / "img4.jpg"),
            **CONSENT_FORM,
        },
        content_type="multipart/form-data",
    )


def assert_store_unavailable(resp, *mentions):
    assert resp.status_code == 503, resp.get_data(as_text=True)
    error = resp.get_json()["error"]
    assert error["code"] == "store_unavailable"
    for text in mentions:
        assert text in error["message"], error["message"]


# --- API only (no worker): missing bucket / table, emulators down ------------------------------


@pytest.fixture
def api_redis():
    url = redis_url_for(API_REDIS_DB)
    client = redis_db.client(url)
    client.flushdb()
    yield url, client
    client.flushdb()


def api(redis_url, blob_store_url, records_url, tmp_path, **overrides):
    settings = Settings(
        _env_file=None,
        REDIS_URL=redis_url,
        blob_store_url=blob_store_url,
        records_url=records_url,
        deepface_home=DEEPFACE_HOME,
        api_tokens=tokens.TOKENS_JSON,
        api_tokens_file=tmp_path / "none.json",
        cloud_retry_deadline_seconds=2,
        cloud_max_attempts=2,
        **overrides,
    )
    return tokens.as_admin(create_app(settings).test_client())


def test_missing_bucket_readyz_names_it_and_uploads_store_nothing(
    emulators, api_redis, faces_dir, tmp_path
):
    redis_url, r = api_redis
    bucket = unique("missing")
    client = api(
        redis_url,
        f"gs://{bucket}/x",
        emulators.records_url(unique("ok")),
        tmp_path,
        gcs_create_bucket=False,
    )
    resp = client.get("/readyz")
    checks = resp.get_json()["checks"]
    assert resp.status_code == 503
    assert bucket in checks["blob_store"] and "does not exist" in checks["blob_store"]
    assert checks["records"] == "ok" and checks["redis"] == "ok"

    assert_store_unavailable(enroll(client, faces_dir), bucket, "does not exist")
    # Nothing behind: no job, no queued task.
    assert r.keys("attendance:job:*") == [] and r.llen("cpu") == 0


def test_missing_tables_readyz_names_them_and_reads_fail_clearly(emulators, api_redis, tmp_path):
    redis_url, _ = api_redis
    prefix = unique("notables")
    client = api(
        redis_url,
        emulators.blob_url(unique("b")),
        emulators.records_url(prefix),
        tmp_path,
        gcs_create_bucket=True,
        dynamodb_create_tables=False,
    )
    resp = client.get("/readyz")
    checks = resp.get_json()["checks"]
    assert resp.status_code == 503
    assert f"'{prefix}-students'" in checks["records"] and "does not exist" in checks["records"]
    assert checks["blob_store"] == "ok"
    assert_store_unavailable(client.get("/api/v1/students"), f"'{prefix}-students'")
    assert_store_unavailable(client.get("/api/v1/attendance?class_id=c1"), prefix)


def test_emulators_down_readyz_says_which_quickly(emulators, api_redis, monkeypatch, tmp_path):
    redis_url, _ = api_redis
    gcs_down, dynamo_down = dead_endpoint(), dead_endpoint()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_down)
    client = api(
        redis_url,
        emulators.blob_url(unique("b")),
        emulators.records_url(unique("t"), endpoint=dynamo_down),
        tmp_path,
    )
    started = time.monotonic()
    resp = client.get("/readyz")
    assert time.monotonic() - started < 8
    checks = resp.get_json()["checks"]
    assert resp.status_code == 503
    assert gcs_down in checks["blob_store"] and "did not answer" in checks["blob_store"]
    assert dynamo_down in checks["records"] and "cannot be reached" in checks["records"]
    assert checks["redis"] == "ok"
    assert_store_unavailable(client.get("/api/v1/students"), dynamo_down, "cannot be reached")


# --- with a worker --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fault_stack(tmp_path_factory, emulators):
    """A worker on GCS (the shared emulator) and a DynamoDB of its own, table creation off,
    two attempts per job and per DynamoDB call so that failures come quickly."""
    dynamo = MotoDynamoDB()
    records_url = emulators.records_url(TABLE_PREFIX, endpoint=dynamo.endpoint)
    creator = DynamoRecords(TABLE_PREFIX, region=REGION, endpoint_url=dynamo.endpoint)
    creator.ping()  # the tables exist (as IaC would have made them)
    # Enrolled below without the API. Written through a store of its own: the creator's first
    # use would mark the tables checked, and it is to create the gallery table again later.
    writer = DynamoRecords(TABLE_PREFIX, region=REGION, endpoint_url=dynamo.endpoint)
    for student_id in ("jolie", "jolie-2"):
        give_consent(writer, student_id)
    stack = make_stack(
        tmp_path_factory.mktemp("cloud-faults"),
        FAULT_REDIS_DB,
        blob_store_url=emulators.blob_url("attendance-faults", "school"),
        records_url=records_url,
        extra_env=emulators.env,
        gcs_create_bucket=True,
        dynamodb_create_tables=False,
        task_max_attempts=2,
        cloud_max_attempts=2,
        cloud_retry_deadline_seconds=3,
    )
    stack.worker = stack.start_worker("f1")
    stack.dynamo, stack.creator = dynamo, creator
    yield stack
    stop_process(stack.worker)
    dynamo.stop()
    redis_db.fresh_db(FAULT_REDIS_DB)


def gallery_objects(stack) -> list[str]:
    return open_blob_store(stack.settings.blob_store_url, stack.settings).list("gallery")


def submit_enrollment(stack, faces_dir, student_id="jolie") -> str:
    """Queue an enrollment as the API does (uploads stored, job created, task sent), without
    the API's own use of the records store, so that only the worker meets the fault."""
    blobs = open_blob_store(stack.settings.blob_store_url, stack.settings)
    jobs = JobStore(redis_db.client(stack.settings.redis_url), 3600)
    job_id = new_job_id()
    uploads = []
    for i, name in enumerate(("img2.jpg", "img4.jpg")):
        key = f"uploads/{job_id}/{i:03d}.jpg"
        blobs.put(key, (faces_dir / name).read_bytes(), "image/jpeg")
        uploads.append(Upload(key=key, filename=name))
    jobs.create(job_id, "enrollment", len(uploads))
    payload = EnrollmentRequest(
        job_id=job_id,
        student_id=student_id,
        name="Angelina Jolie",
        class_id="room-f",
        photos=uploads,
    ).model_dump(mode="json")
    enqueue(make_celery(stack.settings), ENROLL_TASK, payload, job_id)
    return job_id


def test_a_missing_table_fails_the_job_clearly_and_writes_nothing(fault_stack, faces_dir):
    stack = fault_stack
    table = f"{TABLE_PREFIX}-gallery"
    boto3.client("dynamodb", region_name=REGION, endpoint_url=stack.dynamo.endpoint).delete_table(
        TableName=table
    )
    job = stack.wait_for_job(submit_enrollment(stack, faces_dir))
    assert job["state"] == "failed", job
    assert job["error"]["code"] == "store_unavailable"
    assert f"'{table}'" in job["error"]["message"]
    assert "does not exist" in job["error"]["message"]
    assert gallery_objects(stack) == []
    assert f"'{table}'" in stack.client.get("/readyz").get_json()["checks"]["records"]


def test_with_the_table_back_the_same_worker_enrolls(fault_stack, faces_dir):
    stack = fault_stack
    stack.creator.ping()  # recreates the table (creation is on for this one)
    job = stack.wait_for_job(submit_enrollment(stack, faces_dir))
    assert job["state"] == "succeeded", job
    assert job["result"]["model_version"] == 1
    body = stack.client.get("/readyz").get_json()
    assert body["checks"]["records"] == body["checks"]["blob_store"] == "ok"


def test_dynamodb_down_fails_the_job_after_a_retry_and_leaves_the_gallery_whole(
    fault_stack, faces_dir
):
    stack = fault_stack
    before = gallery_objects(stack)
    assert len([k for k in before if "/manifests/" in k]) == 1
    stack.dynamo.stop()

    resp = stack.client.get("/readyz")
    assert resp.status_code == 503
    records_check = resp.get_json()["checks"]["records"]
    assert stack.dynamo.endpoint in records_check and "cannot be reached" in records_check

    job_id = submit_enrollment(stack, faces_dir, "jolie-2")  # uploads go to GCS, still up
    job = stack.wait_for_job(job_id)
    assert job["state"] == "failed", job
    assert job["error"]["code"] == "store_unavailable"
    assert stack.dynamo.endpoint in job["error"]["message"]
    assert "cannot be reached" in job["error"]["message"]
    log = (stack.root / "worker-f1.log").read_text(errors="replace")
    assert f"job {job_id}: DynamoDB" in log and "retrying" in log  # tried twice
    # Nothing half-written: the gallery holds exactly what version 1 named.
    assert gallery_objects(stack) == before
    assert_store_unavailable(stack.client.get("/api/v1/students"), stack.dynamo.endpoint)
