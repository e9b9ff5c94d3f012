"""Choosing backends and queues from settings: URL validation and task routing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from attendance.config import urls
from attendance.config.settings import Settings
from attendance.config.urls import parse_dynamodb_url, parse_gs_url
from attendance.dispatch import (
    CPU_QUEUE,
    ENROLL_TASK,
    GPU_QUEUE,
    RECOGNISE_TASK,
    make_celery,
    task_queue,
)
from attendance.stores import blob, records
from attendance.stores.blob import LocalBlobStore, open_blob_store
from attendance.stores.records import SqliteRecords, open_records


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


def test_stores_opened_without_settings_take_the_defaults(monkeypatch):
    """A script or test that passes no settings gets the documented defaults, not whatever the
    environment happens to say."""
    monkeypatch.setenv("ATTENDANCE_CLOUD_TIMEOUT_SECONDS", "7")
    monkeypatch.setenv("ATTENDANCE_DYNAMODB_CREATE_TABLES", "false")
    defaults = Settings.model_fields
    blobs = open_blob_store("gs://nowhere-bucket")
    assert blobs.timeout[1] == defaults["cloud_timeout_seconds"].default
    assert blobs.retry_deadline == defaults["cloud_retry_deadline_seconds"].default
    assert blobs.create_bucket is defaults["gcs_create_bucket"].default
    records = open_records("dynamodb://nowhere?region=eu-west-1")
    assert records.create_tables is defaults["dynamodb_create_tables"].default
    assert records._config.read_timeout == defaults["cloud_timeout_seconds"].default


def test_every_known_scheme_can_be_opened():
    """The settings accept exactly the schemes the stores know how to open."""
    assert list(blob.OPENERS) == list(urls.BLOB_SCHEMES)
    assert list(records.OPENERS) == list(urls.RECORDS_SCHEMES)


def test_file_and_sqlite_urls_name_paths():
    assert urls.parse_blob_store_url("file://./var/store") == urls.FileUrl(Path("./var/store"))
    assert urls.parse_records_url("sqlite:////srv/a.db") == urls.SqliteUrl(Path("/srv/a.db"))


def test_settings_import_nothing_else_of_the_project():
    """Configuration is the bottom layer: every other layer may read it, it reads none."""
    code = (
        "import json, sys, attendance.config.settings; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('attendance.'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert all(name.startswith("attendance.config") for name in json.loads(out)), out


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
    for name in (ENROLL_TASK, RECOGNISE_TASK):
        assert app.amqp.router.route({}, name)["queue"].name == expected


def test_unknown_queue_is_refused():
    with pytest.raises(ValidationError):
        settings(task_queue="tpu")
