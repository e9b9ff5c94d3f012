"""The cloud stores' own behaviour over real HTTP: missing bucket or tables, an emulator that is
down, transient errors retried with backoff, permanent ones failing at once with a clear error,
and the table design docs/deploy.md describes."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from attendance.config.settings import Settings
from attendance.domain.errors import NotFound, StoreBusy, StoreUnavailable
from attendance.stores.blob import open_blob_store
from attendance.stores.blob.gcs import GcsBlobStore
from attendance.stores.records import open_records
from attendance.stores.records.dynamodb import DynamoRecords
from tests.emulators import REGION, FlakyProxy, dead_endpoint, unique

pytestmark = pytest.mark.integration


def dynamo(endpoint: str, prefix: str | None = None, **kwargs) -> DynamoRecords:
    kwargs.setdefault("max_attempts", 3)
    return DynamoRecords(prefix or unique("t"), region=REGION, endpoint_url=endpoint, **kwargs)


def gcs(bucket: str | None = None, **kwargs) -> GcsBlobStore:
    kwargs.setdefault("retry_deadline", 3.0)
    kwargs.setdefault("retry_initial_delay", 0.1)
    return GcsBlobStore(bucket or unique("b"), "p", **kwargs)


def assert_store_error(exc: BaseException, *mentions: str) -> None:
    assert isinstance(exc, StoreUnavailable)
    assert exc.status == 503 and exc.code == "store_unavailable"
    for text in mentions:
        assert text in exc.message, exc.message


def raised(call) -> BaseException:
    with pytest.raises(StoreUnavailable) as info:
        call()
    return info.value


# --- missing bucket / tables ----------------------------------------------------------------------


def test_missing_bucket_with_create_off_is_a_clear_error_everywhere(emulators):
    store = gcs("no-such-bucket-1", create_bucket=False)
    for call in (
        store.ping,
        lambda: store.put("a/b", b"x"),
        lambda: store.get("a/b"),
        lambda: store.list("a"),
    ):
        exc = raised(call)
        assert_store_error(
            exc, "'no-such-bucket-1'", "does not exist", "ATTENDANCE_GCS_CREATE_BUCKET"
        )
        assert not isinstance(exc, StoreBusy)  # permanent: not worth retrying


def test_missing_bucket_is_created_when_allowed(emulators):
    store = gcs(create_bucket=True)
    store.ping()
    store.put("a/b", b"x")
    assert gcs(store.bucket_name, create_bucket=False).get("a/b") == b"x"


def test_missing_tables_with_create_off_are_a_clear_error(emulators):
    prefix = unique("off")
    store = dynamo(emulators.dynamodb.endpoint, prefix, create_tables=False)
    for call in (store.ping, lambda: store.get_student("x"), store.get_gallery_pointer):
        exc = raised(call)
        assert_store_error(
            exc, f"'{prefix}-", "does not exist", "ATTENDANCE_DYNAMODB_CREATE_TABLES"
        )
        assert not isinstance(exc, StoreBusy)
    # Once someone (IaC, or a store allowed to) has created them, the same store works.
    dynamo(emulators.dynamodb.endpoint, prefix, create_tables=True).ping()
    store.ping()
    assert store.get_student("x") is None


def test_a_table_deleted_under_a_running_store_is_named(emulators):
    store = dynamo(emulators.dynamodb.endpoint)
    assert store.get_gallery_pointer() is None
    client(emulators).delete_table(TableName=store.gallery_table)
    exc = raised(store.get_gallery_pointer)
    assert_store_error(exc, f"'{store.gallery_table}'", "does not exist")
    assert_store_error(raised(store.ping), f"'{store.gallery_table}'")


def test_tables_created_by_many_processes_at_once(emulators):
    prefix = unique("race")
    stores = [dynamo(emulators.dynamodb.endpoint, prefix) for _ in range(6)]
    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(lambda s: s.get_student("nobody"), stores)) == [None] * 6


def client(emulators):
    return boto3.client("dynamodb", region_name=REGION, endpoint_url=emulators.dynamodb.endpoint)


def test_table_design_is_the_documented_one(emulators):
    store = dynamo(emulators.dynamodb.endpoint)
    store.ping()

    def describe(table):
        desc = client(emulators).describe_table(TableName=table)["Table"]
        keys = [(k["AttributeName"], k["KeyType"]) for k in desc["KeySchema"]]
        gsis = {
            g["IndexName"]: [(k["AttributeName"], k["KeyType"]) for k in g["KeySchema"]]
            for g in desc.get("GlobalSecondaryIndexes", [])
        }
        return keys, gsis, desc["BillingModeSummary"]["BillingMode"]

    assert describe(store.students_table) == ([("student_id", "HASH")], {}, "PAY_PER_REQUEST")
    assert describe(store.members_table)[0] == [("class_id", "HASH"), ("student_id", "RANGE")]
    assert describe(store.attendance_table)[:2] == (
        [("class_id", "HASH"), ("date_student", "RANGE")],
        {"by_student": [("student_id", "HASH"), ("date", "RANGE")]},
    )
    assert describe(store.gallery_table)[0] == [("scope", "HASH")]
    docs = (__import__("pathlib").Path(__file__).parents[2] / "docs" / "deploy.md").read_text()
    for name in (
        "-students",
        "-class-members",
        "-attendance",
        "-gallery",
        "by_student",
        "date_student",
    ):
        assert name in docs, name


# --- an emulator that is down -------------------------------------------------------------------


def test_dynamodb_down_ping_is_quick_and_operations_fail_clearly(emulators):
    endpoint = dead_endpoint()
    store = dynamo(endpoint)
    started = time.monotonic()
    exc = raised(store.ping)
    assert time.monotonic() - started < 3
    assert_store_error(exc, endpoint, "cannot be reached")
    exc = raised(lambda: store.get_student("x"))
    assert isinstance(exc, StoreBusy)  # transient: a task may try again later
    assert_store_error(exc, endpoint, "cannot be reached")


def test_gcs_down_ping_is_quick_and_operations_fail_clearly(emulators, monkeypatch):
    endpoint = dead_endpoint()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", endpoint)
    store = gcs(retry_deadline=1.0)
    started = time.monotonic()
    exc = raised(store.ping)
    assert time.monotonic() - started < 3
    assert_store_error(exc, store.bucket_name, endpoint, "did not answer")
    exc = raised(lambda: store.get("a/b"))
    assert isinstance(exc, StoreBusy)
    assert_store_error(exc, store.bucket_name, "unreachable or failing", "ConnectionError")


# --- transient errors are retried with backoff; permanent ones are not --------------------------

THROTTLED = json.dumps(
    {
        "__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException",
        "message": "Rate of requests exceeds the allowed throughput.",
    }
).encode()
AWS_JSON = {"Content-Type": "application/x-amz-json-1.0"}


@pytest.fixture
def proxies():
    made = []
    yield lambda *a, **kw: made.append(FlakyProxy(*a, **kw)) or made[-1]
    for proxy in made:
        proxy.stop()


def test_dynamodb_throttling_and_5xx_are_retried(emulators, proxies):
    store = dynamo(emulators.dynamodb.endpoint)
    store.ping()  # tables exist; from here on every call goes through the proxy
    for status, body in ((400, THROTTLED), (500, b'{"__type": "InternalServerError"}')):
        proxy = proxies(
            emulators.dynamodb.endpoint, failures=2, status=status, body=body, headers=AWS_JSON
        )
        flaky = dynamo(proxy.url, store.prefix, max_attempts=5, create_tables=False)
        flaky._ready = True  # only the call under test goes through the proxy
        assert flaky.get_gallery_pointer() is None
        assert proxy.failed == 2 and proxy.requests == 3


def test_dynamodb_gives_up_after_max_attempts_with_a_transient_error(emulators, proxies):
    proxy = proxies(
        emulators.dynamodb.endpoint, failures=100, status=400, body=THROTTLED, headers=AWS_JSON
    )
    flaky = dynamo(proxy.url, max_attempts=3, create_tables=False)
    flaky._ready = True
    exc = raised(flaky.get_gallery_pointer)
    assert isinstance(exc, StoreBusy)
    assert_store_error(exc, flaky.gallery_table, "ThrottlingException")
    assert proxy.requests == 3  # cloud_max_attempts, first try included


@pytest.mark.parametrize("code", ["AccessDeniedException", "UnrecognizedClientException"])
def test_dynamodb_refused_credentials_fail_at_once(emulators, proxies, code):
    body = json.dumps(
        {
            "__type": f"com.amazon.coral.service#{code}",
            "message": "not authorized to perform: dynamodb:GetItem",
        }
    ).encode()
    proxy = proxies(
        emulators.dynamodb.endpoint, failures=100, status=400, body=body, headers=AWS_JSON
    )
    flaky = dynamo(proxy.url, max_attempts=5, create_tables=False)
    flaky._ready = True
    exc = raised(flaky.get_gallery_pointer)
    assert not isinstance(exc, StoreBusy)
    assert_store_error(exc, flaky.gallery_table, code, "refused")
    assert proxy.requests == 1


def test_gcs_5xx_and_429_are_retried_on_uploads_and_downloads(emulators, proxies, monkeypatch):
    bucket = unique("flaky")
    gcs(bucket, create_bucket=True).ping()
    for status in (503, 429):
        proxy = proxies(emulators.gcs.host, failures=2, status=status)
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        flaky = gcs(bucket)
        flaky.put("a/b.bin", b"payload")
        assert proxy.failed == 2
        proxy.failures += 2
        assert flaky.get("a/b.bin") == b"payload"
        assert proxy.failed == 4


def test_gcs_gives_up_at_the_deadline_and_refusals_fail_at_once(emulators, proxies, monkeypatch):
    bucket = unique("flaky")
    gcs(bucket, create_bucket=True).ping()
    proxy = proxies(emulators.gcs.host, failures=10_000, status=503)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
    started = time.monotonic()
    exc = raised(lambda: gcs(bucket, retry_deadline=1.5).put("a/b", b"x"))
    assert isinstance(exc, StoreBusy) and time.monotonic() - started < 5
    assert_store_error(exc, bucket, "gave up after retrying for 1.5s")
    assert proxy.requests > 2

    body = json.dumps(
        {"error": {"code": 403, "message": "caller does not have storage.objects.create access"}}
    ).encode()
    proxy = proxies(
        emulators.gcs.host,
        failures=10_000,
        status=403,
        body=body,
        headers={"Content-Type": "application/json"},
    )
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
    exc = raised(lambda: gcs(bucket).put("a/b", b"x"))
    assert not isinstance(exc, StoreBusy)
    assert_store_error(exc, bucket, "refused", "roles/storage.objectUser")
    # One upload request, not retried. (The client may also look up the bucket's metadata in
    # the background, which is not the call under test.)
    assert [m for m, path in proxy.seen if path.startswith("/upload/")] == ["POST"]


def test_gcs_needs_no_bucket_permissions_to_work_and_report(emulators, proxies, monkeypatch):
    """With roles/storage.objectUser only (no storage.buckets.get), a missing object is still a
    404 and readiness still passes: nothing the store does looks the bucket up."""
    bucket = unique("objuser")
    gcs(bucket, create_bucket=True).put("a/b", b"x")
    body = json.dumps({"error": {"code": 403, "message": "no storage.buckets.get"}}).encode()
    proxy = proxies(
        emulators.gcs.host,
        failures=10_000,
        status=403,
        body=body,
        headers={"Content-Type": "application/json"},
        fail_if=lambda method, path: path.startswith(f"/storage/v1/b/{bucket}?"),
    )
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
    store = gcs(bucket, create_bucket=False)
    store.ping()
    assert store.get("a/b") == b"x"
    with pytest.raises(NotFound):
        store.get("a/missing")
    assert store.list("a") == ["a/b"]


# --- configuration ------------------------------------------------------------------------------


def test_settings_choose_the_backends_and_their_retry_policy(emulators, tmp_path):
    settings = Settings(
        _env_file=None,
        blob_store_url="gs://some-bucket/school/a",
        records_url=f"dynamodb://school?region=eu-west-1&endpoint_url={dead_endpoint()}",
        cloud_max_attempts=7,
        aws_retry_mode="adaptive",
        cloud_timeout_seconds=12,
        cloud_retry_deadline_seconds=9,
        dynamodb_create_tables=False,
        gcs_create_bucket=True,
    )
    blobs = open_blob_store(settings.blob_store_url, settings)
    assert isinstance(blobs, GcsBlobStore)
    assert (blobs.bucket_name, blobs.prefix, blobs.create_bucket) == (
        "some-bucket",
        "school/a",
        True,
    )
    assert blobs.timeout == (10.0, 12) and blobs.retry_deadline == 9
    records = open_records(settings.records_url, settings)
    assert isinstance(records, DynamoRecords)
    assert {
        "school-students",
        "school-class-members",
        "school-attendance",
        "school-gallery",
        "school-audit",
    } <= set(records.tables)
    assert all(table.startswith("school-") for table in records.tables)
    assert records.region == "eu-west-1" and records.create_tables is False
    config = records._client()._client_config
    assert config.retries == {"mode": "adaptive", "total_max_attempts": 7}
    assert config.read_timeout == 12


# --- the gallery's compare-and-set across processes ----------------------------------------------

COMMITTER = """
import sys
import numpy as np
from attendance.stores.blob import open_blob_store
from attendance.stores.gallery import GalleryRepository
from attendance.stores.records import open_records

import time

blob_url, records_url, name, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
repo = GalleryRepository(open_blob_store(blob_url), open_records(records_url))
lost = 0
swap = repo.records.swap_gallery_pointer


def counting_swap(expected, new, **guard):
    global lost
    won = swap(expected, new, **guard)
    lost += not won
    return won


repo.records.swap_gallery_pointer = counting_swap
repo.records.ping()
print("ready", flush=True)
go = __import__("pathlib").Path(sys.argv[5])
while not go.exists():  # all start together
    time.sleep(0.01)
for i in range(count):
    vec = np.random.default_rng(i).normal(size=(1, 128)).astype("float32")
    repo.commit(vec, [f"{name}-{i}"], segment_id=f"{name}-{i}", model_name="Facenet",
                pipeline="Facenet/opencv-v1", detector="opencv", metric="cosine", threshold=0.4)
print(lost)
"""


def test_commits_from_several_processes_lose_nothing(emulators, tmp_path):
    import os
    import subprocess
    import sys

    from attendance.stores.gallery import GalleryRepository

    blob_url = emulators.blob_url(unique("cas"), "g")
    records_url = emulators.records_url(unique("cas"))
    # Bucket and tables exist before the race starts (creating them is tested above).
    bucket = blob_url[len("gs://") :].split("/")[0]
    GcsBlobStore(bucket, create_bucket=True).ping()
    open_records(records_url).ping()
    env = {**os.environ, **emulators.env}
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", COMMITTER, blob_url, records_url, name, "12", str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("p1", "p2", "p3")
    ]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()[-3000:]
    go.touch()
    lost = 0
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
        lost += int(out.split()[-1])
    repo = GalleryRepository(open_blob_store(blob_url), open_records(records_url))
    manifest = repo.current_manifest()
    assert manifest.version == 36
    assert sorted(manifest.embeddings_per_student()) == sorted(
        f"{p}-{i}" for p in ("p1", "p2", "p3") for i in range(12)
    )
    # The race was real: some conditional writes lost and their commits were retried.
    print(f"{lost} of {36 + lost} pointer writes lost the race and were retried")
    assert lost > 0
