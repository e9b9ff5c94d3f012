"""Choosing backends and queues from settings: URL validation and task routing."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from attendance.config.settings import Settings
from attendance.dispatch import (
    CPU_QUEUE,
    ENROLL_TASK,
    GPU_QUEUE,
    RECOGNIZE_TASK,
    make_celery,
    task_queue,
)
from attendance.stores.blob import LocalBlobStore, open_blob_store, parse_gs_url
from attendance.stores.records import SqliteRecords, open_records, parse_dynamodb_url


def settings(**kwargs) -> Settings:
    return Settings(_env_file=None, **kwargs)


@pytest.mark.parametrize(
    "url, bucket, prefix",
    [
        ("gs://my-bucket", "my-bucket", ""),
        ("gs://my-bucket/", "my-bucket", ""),
        ("gs://school.example.org/attendance/prod/", "school.example.org", "attendance/prod"),
        ("gs://a_b-c1/x", "a_b-c1", "x"),
    ],
)
def test_gs_urls(url, bucket, prefix):
    assert settings(blob_store_url=url).blob_store_url == url
    parsed = parse_gs_url(url)
    assert (parsed.bucket, parsed.prefix) == (bucket, prefix)


@pytest.mark.parametrize(
    "url, says",
    [
        ("gs://", "invalid GCS bucket name"),
        ("gs://UpperCase", "invalid GCS bucket name"),
        ("gs://ab", "invalid GCS bucket name"),
        ("gs://-bad", "invalid GCS bucket name"),
        ("gs://ok-bucket/../etc", "invalid object prefix"),
        ("gs://ok-bucket/a b", "invalid object prefix"),
        ("gs://ok-bucket?x=1", "no query"),
        ("s3://bucket", "must start with file:// or gs://"),
    ],
)
def test_bad_blob_store_urls_are_refused_with_the_reason(url, says):
    with pytest.raises(ValidationError) as info:
        settings(blob_store_url=url)
    assert says in str(info.value)


def test_dynamodb_urls():
    url = "dynamodb://school-prod?region=eu-west-1&endpoint_url=http://localhost:8000/&page_size=50"
    assert settings(records_url=url).records_url == url
    parsed = parse_dynamodb_url(url)
    assert parsed.table_prefix == "school-prod" and parsed.region == "eu-west-1"
    assert parsed.endpoint_url == "http://localhost:8000" and parsed.page_size == 50
    bare = parse_dynamodb_url("dynamodb://attendance")
    assert (bare.region, bare.endpoint_url, bare.page_size) == (None, None, None)


@pytest.mark.parametrize(
    "url, says",
    [
        ("dynamodb://", "table-prefix"),
        ("dynamodb://bad prefix", "table-prefix"),
        ("dynamodb://p/extra/path", "table-prefix"),
        ("dynamodb://p?regoin=eu-west-1", "unknown records_url option(s) regoin"),
        ("dynamodb://p?region=", "exactly one non-empty value"),
        ("dynamodb://p?region=a&region=b", "exactly one non-empty value"),
        ("dynamodb://p?endpoint_url=localhost:8000", "endpoint_url must be http(s)://"),
        ("dynamodb://p?page_size=0", "page_size"),
        ("postgres://x", "must start with sqlite:/// or dynamodb://"),
    ],
)
def test_bad_records_urls_are_refused_with_the_reason(url, says):
    with pytest.raises(ValidationError) as info:
        settings(records_url=url)
    assert says in str(info.value)


def test_local_urls_still_open_the_embedded_stores(tmp_path):
    assert isinstance(open_blob_store(f"file://{tmp_path}/s"), LocalBlobStore)
    assert isinstance(open_records(f"sqlite:///{tmp_path}/db.sqlite"), SqliteRecords)


def test_opening_cloud_stores_contacts_nothing():
    """create_app builds the stores while a service may be down: nothing connects yet."""
    blobs = open_blob_store("gs://nowhere-bucket/p")
    records = open_records("dynamodb://nowhere?region=eu-west-1&endpoint_url=http://127.0.0.1:1")
    assert blobs._client is None and records._client_obj is None


@pytest.mark.parametrize(
    "task_queue_setting, gpu_workers, expected",
    [
        ("auto", False, CPU_QUEUE),
        ("auto", True, GPU_QUEUE),
        ("cpu", True, CPU_QUEUE),
        ("gpu", False, GPU_QUEUE),
    ],
)
def test_face_work_is_routed_by_settings(task_queue_setting, gpu_workers, expected):
    s = settings(task_queue=task_queue_setting, gpu_workers=gpu_workers)
    assert s.resolved_task_queue == expected
    app = make_celery(s)
    assert task_queue(app) == expected
    for name in (ENROLL_TASK, RECOGNIZE_TASK):
        assert app.amqp.router.route({}, name)["queue"].name == expected


def test_unknown_queue_is_refused():
    with pytest.raises(ValidationError):
        settings(task_queue="tpu")
