"""The API against real Redis and real local stores: every rejection leaves nothing behind.

No Celery worker runs: an accepted job is a JobStore key plus a message waiting in the ``cpu``
list, which is exactly what these tests look at.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import logging
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import redis
from PIL import Image

from attendance.config.settings import Settings
from attendance.dispatch import CPU_QUEUE, ENROLL_TASK, RECOGNISE_TASK
from attendance.domain.pipelines import pipeline_id
from attendance.domain.schemas import AttendanceRecord
from attendance.stores.blob import open_blob_store
from attendance.stores.gallery import GalleryRepository
from attendance.stores.records import open_records
from attendance.web.app import create_app
from attendance.web.context import Services, producer_celery
from tests import redis_db, tokens
from tests.consent import CONSENT_FORM

pytestmark = [pytest.mark.redis, pytest.mark.integration]

# The test server, but always database 15: these tests flush it, and the test server's URL may
# name a database with real data in it (the default REDIS_URL's 0).
REDIS_URL = redis_db.url_for(15)
# Nothing listens here: a Redis that is down.
DEAD_REDIS_URL = "redis://127.0.0.1:1/15"
JOB_KEYS = "attendance:job:*"
MAX_UPLOAD_MB = 2.0


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def redis_client():
    client = redis_db.client(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.fail(f"these tests need Redis at {REDIS_URL} (ATTENDANCE_TEST_REDIS_URL): {exc}")
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def make_settings(tmp_path: Path, redis_url: str = REDIS_URL) -> Settings:
    return Settings(
        _env_file=None,
        REDIS_URL=redis_url,
        blob_store_url=f"file://{tmp_path}/store",
        records_url=f"sqlite:///{tmp_path}/db.sqlite",
        max_upload_mb=MAX_UPLOAD_MB,
        max_enroll_photos=3,
        max_recognition_photos=4,
        api_tokens=tokens.TOKENS_JSON,
        api_tokens_file=tmp_path / "no-tokens-file.json",
    )


@pytest.fixture
def settings(tmp_path, redis_client) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def app(settings):
    return create_app(settings)


@pytest.fixture
def client(app):
    return tokens.as_admin(app.test_client())


@pytest.fixture
def records(settings):
    return open_records(settings.records_url)


@pytest.fixture
def blobs(settings):
    return open_blob_store(settings.blob_store_url)


@pytest.fixture
def face_jpeg(faces_dir) -> bytes:
    return (faces_dir / "img2.jpg").read_bytes()


# --- helpers --------------------------------------------------------------------------------------


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (30, 160, 90)).save(out, format=fmt)
    return out.getvalue()


def photo(data: bytes, name: str) -> tuple[io.BytesIO, str]:
    return io.BytesIO(data), name


def stored_files(tmp_path: Path, prefix: str = "uploads") -> list[Path]:
    root = tmp_path / "store" / prefix
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def queued_messages(redis_client) -> list[dict]:
    return [json.loads(raw) for raw in redis_client.lrange(CPU_QUEUE, 0, -1)]


def task_payload(message: dict) -> dict:
    args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    assert args == []
    return kwargs["payload"]


def assert_nothing_stored(tmp_path: Path, redis_client) -> None:
    assert stored_files(tmp_path) == []
    assert redis_client.keys(JOB_KEYS) == []
    assert redis_client.llen(CPU_QUEUE) == 0


def assert_error(response, status: int, code: str, *mentions: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code, body
    for text in mentions:
        assert text in body["error"]["message"], body
    return body


def enroll_form(**overrides) -> dict:
    form = {
        "student_id": "s-001",
        "name": "Ada Lovelace",
        "class_id": "CS101",
        "photos": [photo(image_bytes(), "ada.png")],
        **CONSENT_FORM,
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


def enroll_student(records, student_id="s-001", class_id="CS101") -> None:
    records.upsert_student(student_id, "Ada Lovelace", class_id)


# --- enrollment: accepted -------------------------------------------------------------------------


def test_enroll_queues_a_job_with_stored_uploads(client, tmp_path, redis_client, face_jpeg):
    response = client.post(
        "/api/v1/students",
        data=enroll_form(
            photos=[
                photo(face_jpeg, "img2.jpg"),
                photo(image_bytes("PNG"), "../../etc/passwd"),
                photo(image_bytes("JPEG"), "/home/me/holiday.gif"),
            ]
        ),
    )
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    job_id = body["job_id"]
    assert body["status_url"] == f"/api/v1/jobs/{job_id}"
    assert response.headers["Location"] == body["status_url"]

    job = client.get(body["status_url"]).get_json()
    assert (job["job_id"], job["kind"], job["state"]) == (job_id, "enrollment", "queued")
    assert job["progress"] == {"done": 0, "total": 3}
    assert json.loads(redis_client.get(f"attendance:job:{job_id}"))["state"] == "queued"

    # Keys come from the server and the detected format, never from the client's filename.
    keys = [f"uploads/{job_id}/000.jpg", f"uploads/{job_id}/001.png", f"uploads/{job_id}/002.jpg"]
    assert [str(p.relative_to(tmp_path / "store")) for p in stored_files(tmp_path)] == keys
    assert (tmp_path / "store" / keys[0]).read_bytes() == face_jpeg

    [message] = queued_messages(redis_client)
    assert message["headers"]["task"] == ENROLL_TASK
    assert message["headers"]["id"] == job_id
    # Flower and the logs see the job id only, never the student's name.
    assert "Ada" not in message["headers"]["argsrepr"] + message["headers"]["kwargsrepr"]
    payload = task_payload(message)
    asked = dt.datetime.fromisoformat(payload.pop("requested_at"))
    assert abs(dt.datetime.now(dt.UTC) - asked) < dt.timedelta(minutes=1)
    assert payload == {
        "job_id": job_id,
        "student_id": "s-001",
        "mode": "create",
        "name": "Ada Lovelace",
        "class_id": "CS101",
        "photos": [
            {"key": keys[0], "filename": "img2.jpg", "captured_at": None, "box": None},
            {"key": keys[1], "filename": "passwd", "captured_at": None, "box": None},
            {"key": keys[2], "filename": "holiday.gif", "captured_at": None, "box": None},
        ],
        "requested_by": "admin",
    }


def test_enroll_without_class_and_twice_for_the_same_student(client, redis_client):
    for _ in range(2):
        response = client.post("/api/v1/students", data=enroll_form(class_id=None))
        assert response.status_code == 202, response.get_json()
    assert redis_client.llen(CPU_QUEUE) == 2
    payloads = [task_payload(m) for m in queued_messages(redis_client)]
    assert [p["class_id"] for p in payloads] == [None, None]
    assert payloads[0]["job_id"] != payloads[1]["job_id"]


# --- enrollment: rejected, nothing stored ---------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, code, mention",
    [
        ({"student_id": None}, "missing_student_id", "student_id"),
        ({"student_id": ""}, "missing_student_id", "student_id"),
        ({"student_id": "../etc"}, "invalid_student_id", "student_id"),
        ({"student_id": "a b"}, "invalid_student_id", "student_id"),
        ({"student_id": "x" * 65}, "invalid_student_id", "student_id"),
        ({"name": None}, "missing_name", "name"),
        ({"name": "   "}, "missing_name", "name"),
        ({"name": "x" * 201}, "invalid_name", "name"),
        ({"name": "Bell\x07"}, "invalid_name", "name"),
        ({"class_id": ""}, "invalid_class_id", "class_id"),
        ({"class_id": "CS 101"}, "invalid_class_id", "class_id"),
        ({"photos": None}, "missing_photos", "photos"),
        ({"photos": []}, "missing_photos", "photos"),
        ({"photos": "img2.jpg"}, "missing_photos", "as files"),
    ],
)
def test_enroll_rejects_bad_fields(client, tmp_path, redis_client, overrides, code, mention):
    assert_error(client.post("/api/v1/students", data=enroll_form(**overrides)), 400, code, mention)
    assert_nothing_stored(tmp_path, redis_client)


@pytest.mark.parametrize(
    "bad, code",
    [
        (b"", "empty_file"),
        (b"student_id,name\ns-001,Ada\n", "not_an_image"),
        (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "not_an_image"),
        ("truncated", "damaged_image"),
    ],
)
def test_enroll_rejects_a_bad_file_after_good_ones(
    client, tmp_path, redis_client, face_jpeg, bad, code
):
    if bad == "truncated":
        bad = face_jpeg[: len(face_jpeg) // 2]
    response = client.post(
        "/api/v1/students",
        data=enroll_form(
            photos=[
                photo(face_jpeg, "good.jpg"),
                photo(bad, "uploads/bad-one.jpg"),
            ]
        ),
    )
    assert_error(response, 400, code, "bad-one.jpg", "photo 2")
    assert_nothing_stored(tmp_path, redis_client)


def test_enroll_rejects_too_many_photos(client, tmp_path, redis_client):
    response = client.post(
        "/api/v1/students",
        data=enroll_form(photos=[photo(image_bytes(), f"{i}.png") for i in range(4)]),
    )
    assert_error(response, 400, "too_many_photos", "4", "3")
    assert_nothing_stored(tmp_path, redis_client)


def test_enroll_rejects_an_upload_over_the_limit(client, tmp_path, redis_client):
    big = os.urandom(int(MAX_UPLOAD_MB * 1024 * 1024) + 1)
    response = client.post("/api/v1/students", data=enroll_form(photos=[photo(big, "big.jpg")]))
    assert_error(response, 413, "payload_too_large", "2 MB")
    assert_nothing_stored(tmp_path, redis_client)


def test_enroll_needs_a_form(client, tmp_path, redis_client):
    response = client.post("/api/v1/students", data="s-001", content_type="text/plain")
    assert_error(response, 415, "unsupported_media_type", "multipart/form-data")
    assert_nothing_stored(tmp_path, redis_client)


def test_enroll_with_redis_down_stores_nothing(tmp_path, redis_client, face_jpeg):
    client = tokens.as_admin(create_app(make_settings(tmp_path, DEAD_REDIS_URL)).test_client())
    started = time.monotonic()
    response = client.post(
        "/api/v1/students", data=enroll_form(photos=[photo(face_jpeg, "img2.jpg")])
    )
    assert time.monotonic() - started < 10
    assert_error(response, 503, "service_unavailable", "Redis")
    assert_nothing_stored(tmp_path, redis_client)


def test_enroll_with_the_broker_down_at_enqueue_cleans_up(
    tmp_path, redis_client, settings, face_jpeg
):
    # Job state reaches Redis but the task message cannot: the uploads and the job written for
    # this request must both go again.
    services = Services.from_settings(settings)
    services = replace(services, celery=producer_celery(make_settings(tmp_path, DEAD_REDIS_URL)))
    client = tokens.as_admin(create_app(settings, services=services).test_client())
    response = client.post(
        "/api/v1/students",
        data=enroll_form(photos=[photo(face_jpeg, "a.jpg"), photo(image_bytes(), "b.png")]),
    )
    assert_error(response, 503, "service_unavailable", "nothing was stored")
    assert_nothing_stored(tmp_path, redis_client)


# --- recognition ----------------------------------------------------------------------------------


def test_recognition_queues_a_job(client, tmp_path, redis_client, records, face_jpeg):
    enroll_student(records)
    response = client.post(
        "/api/v1/recognitions",
        data={
            "class_id": "CS101",
            "date": "2024-09-02",
            "photos": [photo(face_jpeg, "class photo.jpg"), photo(image_bytes("PNG"), "b.png")],
        },
    )
    assert response.status_code == 202, response.get_json()
    job_id = response.get_json()["job_id"]

    job = client.get(f"/api/v1/jobs/{job_id}").get_json()
    assert (job["kind"], job["state"], job["progress"]) == (
        "recognition",
        "queued",
        {"done": 0, "total": 2},
    )
    assert len(stored_files(tmp_path)) == 2
    [message] = queued_messages(redis_client)
    assert message["headers"]["task"] == RECOGNISE_TASK
    payload = task_payload(message)
    assert dt.datetime.fromisoformat(payload.pop("requested_at")) <= dt.datetime.now(dt.UTC)
    assert payload == {
        "job_id": job_id,
        "class_id": "CS101",
        "date": "2024-09-02",
        "period": "",
        "photos": [
            {
                "key": f"uploads/{job_id}/000.jpg",
                "filename": "class photo.jpg",
                "captured_at": None,
                "box": None,
            },
            {
                "key": f"uploads/{job_id}/001.png",
                "filename": "b.png",
                "captured_at": None,
                "box": None,
            },
        ],
    }


def test_recognition_date_defaults_to_today_utc(client, redis_client, records, face_jpeg):
    enroll_student(records)
    before = dt.datetime.now(dt.UTC).date()
    response = client.post(
        "/api/v1/recognitions", data={"class_id": "CS101", "photos": [photo(face_jpeg, "a.jpg")]}
    )
    after = dt.datetime.now(dt.UTC).date()
    assert response.status_code == 202
    [message] = queued_messages(redis_client)
    assert task_payload(message)["date"] in {before.isoformat(), after.isoformat()}


def test_recognition_for_an_unknown_class(client, tmp_path, redis_client, records, face_jpeg):
    enroll_student(records, class_id="CS101")
    response = client.post(
        "/api/v1/recognitions", data={"class_id": "MATH200", "photos": [photo(face_jpeg, "a.jpg")]}
    )
    assert_error(response, 404, "unknown_class", "MATH200")
    assert_nothing_stored(tmp_path, redis_client)


@pytest.mark.parametrize(
    "form, code, mention",
    [
        ({"class_id": None}, "missing_class_id", "class_id"),
        ({"class_id": "CS/101"}, "invalid_class_id", "class_id"),
        ({"date": "2024-02-30"}, "invalid_date", "2024-02-30"),
        ({"date": "02/09/2024"}, "invalid_date", "date"),
        ({"date": ""}, "invalid_date", "date"),
        ({"photos": None}, "missing_photos", "photos"),
        ({"photos": [photo(b"", "empty.jpg")]}, "empty_file", "empty.jpg"),
        (
            {"photos": [photo(image_bytes("PNG", (300, 300))[:300], "cut.png")]},
            "damaged_image",
            "cut.png",
        ),
        (
            {"photos": [photo(image_bytes(), f"{i}.png") for i in range(5)]},
            "too_many_photos",
            "at most 4",
        ),
    ],
)
def test_recognition_rejects_bad_input(
    client, tmp_path, redis_client, records, form, code, mention
):
    enroll_student(records)
    data = {"class_id": "CS101", "photos": [photo(image_bytes(), "ok.png")]}
    data.update(form)
    response = client.post(
        "/api/v1/recognitions", data={k: v for k, v in data.items() if v is not None}
    )
    assert_error(response, 400, code, mention)
    assert_nothing_stored(tmp_path, redis_client)


def test_recognition_over_the_upload_limit(client, tmp_path, redis_client, records):
    enroll_student(records)
    big = os.urandom(int(MAX_UPLOAD_MB * 1024 * 1024) + 1)
    response = client.post(
        "/api/v1/recognitions", data={"class_id": "CS101", "photos": [photo(big, "big.jpg")]}
    )
    assert_error(response, 413, "payload_too_large")
    assert_nothing_stored(tmp_path, redis_client)


# --- request limits: pixels, form limits, parts that are not files -----------------------------


def test_photos_declaring_too_many_pixels_in_all_are_refused_before_decoding(
    tmp_path, redis_client
):
    from tests.unit.test_images import tiny_gif

    settings = make_settings(tmp_path).model_copy(update={"max_request_pixels": 100_000_000})
    client = tokens.as_admin(create_app(settings).test_client())
    # 34 bytes each, 49 Mpx each declared: the per-image limit (50 Mpx) lets each one through,
    # the request limit does not, and answers before decoding (decoding would find them cut).
    response = client.post(
        "/api/v1/students",
        data=enroll_form(photos=[photo(tiny_gif(7000, 7000), f"{i}.gif") for i in range(3)]),
    )
    assert_error(response, 413, "request_too_large", "147 megapixels", "at most 100 megapixels")
    assert_nothing_stored(tmp_path, redis_client)


def test_an_animated_photo_is_refused(client, tmp_path, redis_client):
    frames = [Image.new("RGB", (32, 32), (90 * i, 20, 20)) for i in range(3)]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:])
    response = client.post(
        "/api/v1/students",
        data=enroll_form(
            photos=[photo(image_bytes(), "still.png"), photo(out.getvalue(), "anim.gif")]
        ),
    )
    assert_error(response, 400, "multi_frame_image", "photo 2 (anim.gif)", "more than one frame")
    assert_nothing_stored(tmp_path, redis_client)


def test_an_mpo_photo_is_accepted_and_stored_as_a_jpeg(client, tmp_path, redis_client):
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(
        out, format="MPO", save_all=True, append_images=[Image.new("RGB", (32, 24))]
    )
    response = client.post(
        "/api/v1/students", data=enroll_form(photos=[photo(out.getvalue(), "IMG_0042.JPG")])
    )
    assert response.status_code == 202, response.get_json()
    [stored] = stored_files(tmp_path)
    assert stored.suffix == ".jpg" and stored.read_bytes() == out.getvalue()


def test_a_text_field_over_the_form_limit_says_so(client, tmp_path, redis_client):
    response = client.post("/api/v1/students", data=enroll_form(name="x" * 600_000))
    assert_error(response, 413, "form_field_too_large", "text field", "500 KB")
    assert_nothing_stored(tmp_path, redis_client)


def test_too_many_form_parts_says_so(client, tmp_path, redis_client):
    form = enroll_form()
    form.update({f"extra{i}": "x" for i in range(1000)})
    response = client.post("/api/v1/students", data=form, content_type="multipart/form-data")
    assert_error(response, 413, "too_many_form_parts", "1000 parts")
    assert_nothing_stored(tmp_path, redis_client)


def test_an_oversized_body_still_names_the_upload_limit(client, tmp_path, redis_client):
    big = os.urandom(int(MAX_UPLOAD_MB * 1024 * 1024) + 1)
    response = client.post("/api/v1/students", data=enroll_form(photos=[photo(big, "big.jpg")]))
    body = assert_error(response, 413, "payload_too_large", "request body", "2 MB upload limit")
    assert "field" not in body["error"]["message"]


BOUNDARY = "----attendance-test-boundary"


def raw_multipart(fields: dict[str, str], photos: list[tuple[bytes, bytes]]) -> bytes:
    """A multipart body built by hand, so a filename can hold bytes no client library sends."""
    out = bytearray()
    for name, value in fields.items():
        out += (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        ).encode()
    for filename, data in photos:
        out += (
            f"--{BOUNDARY}\r\n".encode()
            + b'Content-Disposition: form-data; name="photos"; filename="'
            + filename
            + b'"\r\nContent-Type: image/png\r\n\r\n'
            + data
            + b"\r\n"
        )
    out += f"--{BOUNDARY}--\r\n".encode()
    return bytes(out)


@pytest.mark.parametrize("bad_name", [b"cut\rhere.png", b"cut\nhere.png", b"cut\r\nhere.png"])
def test_a_filename_with_a_raw_cr_or_lf_refuses_the_request(
    client, tmp_path, redis_client, bad_name
):
    # werkzeug cuts such a part's Content-Disposition at the line break, loses its filename and
    # reads the photo as a text field; until it was refused, the others went ahead without it.
    body = raw_multipart(
        {"student_id": "s-001", "name": "Ada"},
        [
            (b"good.png", image_bytes()),
            (bad_name, image_bytes()),
            (b"also-good.png", image_bytes()),
        ],
    )
    response = client.post(
        "/api/v1/students", data=body, content_type=f"multipart/form-data; boundary={BOUNDARY}"
    )
    assert_error(
        response, 400, "photos_part_not_a_file", "1 of the 3 parts named photos", "CR or LF"
    )
    assert_nothing_stored(tmp_path, redis_client)


# --- failures shown to clients carry no internals -----------------------------------------------


def test_a_job_failed_by_an_unexpected_error_shows_a_plain_reason(redis_client, caplog):
    from attendance.stores.jobs import JobStore

    jobs = JobStore(redis_client, 600)
    job_id = "ef" * 16
    jobs.create(job_id, "recognition", 2)
    with caplog.at_level(logging.ERROR, logger="attendance.stores.jobs"):
        jobs.fail(job_id, RuntimeError("cannot open /srv/attendance/var/secret.db"))
    error = jobs.get(job_id).error
    assert error.code == "internal_error"
    assert error.message == (
        f"internal error while processing the job; see the worker log for job {job_id}"
    )
    logged = caplog.text
    assert job_id in logged and "RuntimeError" in logged and "/srv/attendance" in logged


def test_readyz_says_what_is_down_without_exception_text(app, client, monkeypatch, caplog):
    import sqlite3

    svc = app.extensions["attendance"]

    def blob_ping():
        raise OSError("blob store /srv/private/store is not writable")

    def records_ping():
        raise sqlite3.OperationalError("unable to open database file /srv/private/db.sqlite")

    monkeypatch.setattr(svc.blobs, "ping", blob_ping)
    monkeypatch.setattr(svc.records, "ping", records_ping)
    with caplog.at_level(logging.WARNING, logger="attendance.web.routes.health"):
        response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.get_json()["checks"]
    assert checks["blob_store"] == "not writable"
    assert checks["records"] == "cannot be opened, read or written"
    text = response.get_data(as_text=True)
    assert "/srv" not in text and "OperationalError" not in text and "OSError" not in text
    # The details are in the log.
    assert "/srv/private/store" in caplog.text and "/srv/private/db.sqlite" in caplog.text


# --- reading --------------------------------------------------------------------------------------


def test_unknown_job(client):
    assert_error(client.get("/api/v1/jobs/" + "0" * 32), 404, "job_not_found")
    assert_error(client.get("/api/v1/jobs/not-a-job"), 404, "job_not_found")


def test_reads_on_an_empty_store(client, settings):
    assert client.get("/api/v1/students").get_json() == {"students": []}
    assert client.get("/api/v1/students?class_id=CS101").get_json() == {"students": []}
    assert client.get("/api/v1/attendance?class_id=CS101&date=2024-09-02").get_json() == {
        "records": []
    }
    assert client.get("/api/v1/model").get_json() == {
        "version": 0,
        "model_name": settings.model_name,
        "detector": settings.detector,
        "metric": settings.metric,
        "threshold": settings.match_threshold,
        "students": 0,
        "embeddings": 0,
        "updated_at": None,
        "pipeline": pipeline_id(settings),
        "other_pipelines": {},
        "students_to_reembed": 0,
    }
    assert_error(client.get("/api/v1/students/s-001"), 404, "student_not_found", "s-001")


def test_students_and_model_count_gallery_embeddings(client, settings, records, blobs):
    enroll_student(records, "s-001", "CS101")
    enroll_student(records, "s-002", "MATH200")
    GalleryRepository(blobs, records).commit(
        np.random.default_rng(0).normal(size=(3, 128)),
        ["s-001", "s-001", "s-002"],
        segment_id="0" * 32,
        pipeline=pipeline_id(settings),
        model_name=settings.model_name,
        detector=settings.detector,
        metric=settings.metric,
        threshold=settings.match_threshold,
    )
    assert client.get("/api/v1/students?class_id=CS101").get_json() == {
        "students": [
            {
                "student_id": "s-001",
                "name": "Ada Lovelace",
                "class_ids": ["CS101"],
                "embeddings": 2,
                "consent": None,
                "face_data": True,
            },
        ]
    }
    assert client.get("/api/v1/students/s-002").get_json()["embeddings"] == 1
    model = client.get("/api/v1/model").get_json()
    assert (model["version"], model["students"], model["embeddings"]) == (1, 2, 3)
    assert dt.datetime.fromisoformat(model["updated_at"]).tzinfo is not None


def test_attendance_filters(client, records):
    enroll_student(records)
    for day in ("2024-09-02", "2024-09-03", "2024-09-05"):
        records.mark_present(
            AttendanceRecord(
                class_id="CS101",
                date=dt.date.fromisoformat(day),
                student_id="s-001",
                name="Ada Lovelace",
                first_seen_at=dt.datetime.now(dt.UTC),
                distance=0.21,
                job_id="ab" * 16,
            )
        )

    def days(query: str) -> list[str]:
        response = client.get(f"/api/v1/attendance?{query}")
        assert response.status_code == 200, response.get_json()
        return [r["date"] for r in response.get_json()["records"]]

    assert days("class_id=CS101&date=2024-09-03") == ["2024-09-03"]
    assert days("from=2024-09-03&to=2024-09-05") == ["2024-09-03", "2024-09-05"]
    assert days("from=2024-09-04") == ["2024-09-05"]
    assert days("student_id=s-001") == ["2024-09-02", "2024-09-03", "2024-09-05"]
    assert days("class_id=MATH200") == []
    assert days("date=2024-09-03&from=2024-09-01") == ["2024-09-03"]
    assert days("date=2024-09-03&to=2024-09-02") == []
    assert days("from=2024-09-05&to=2024-09-02") == []


@pytest.mark.parametrize(
    "query, code",
    [
        ("date=yesterday", "invalid_date"),
        ("from=2024-9-1", "invalid_date"),
        ("to=2024-09-31", "invalid_date"),
        ("class_id=a%20b", "invalid_class_id"),
        ("student_id=", "invalid_student_id"),
    ],
)
def test_attendance_rejects_bad_queries(client, query, code):
    assert_error(client.get(f"/api/v1/attendance?{query}"), 400, code)


def test_bad_identifiers_in_reads(client):
    assert_error(client.get("/api/v1/students?class_id=CS%2F101"), 400, "invalid_class_id")
    assert_error(client.get("/api/v1/students/a%20b"), 400, "invalid_student_id")


def test_annotated_photo(client, blobs):
    job_id = "cd" * 16
    jpeg = image_bytes("JPEG")
    blobs.put(f"annotated/{job_id}/001.jpg", jpeg, "image/jpeg")
    response = client.get(f"/api/v1/annotated/{job_id}/1")
    assert response.status_code == 200
    assert response.mimetype == "image/jpeg"
    assert response.data == jpeg
    assert_error(client.get(f"/api/v1/annotated/{job_id}/0"), 404, "annotated_not_found")
    assert_error(client.get("/api/v1/annotated/..%2F..%2Fetc/1"), 404, "not_found")
    assert_error(client.get("/api/v1/annotated/XYZ/1"), 404, "job_not_found")
    assert_error(client.get(f"/api/v1/annotated/{job_id}/-1"), 404, "not_found")


# --- the error shape for werkzeug's own errors ----------------------------------------------------


def test_unknown_route_and_wrong_method_are_json(client):
    assert_error(client.get("/nope"), 404, "not_found", "/nope")
    assert_error(client.get("/api/v1/students/"), 404, "not_found")
    response = client.delete("/api/v1/students")
    assert_error(response, 405, "method_not_allowed", "DELETE", "GET, POST")
    assert {"GET", "POST"} <= set(response.headers["Allow"].split(", "))
    assert_error(client.put("/api/v1/jobs/" + "0" * 32), 405, "method_not_allowed")


def test_unexpected_errors_are_json_500(app, client, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(app.extensions["attendance"].records, "list_students", broken)
    body = assert_error(client.get("/api/v1/students"), 500, "internal_error")
    assert "secret" not in body["error"]["message"]


def test_reads_with_redis_down_are_503(tmp_path, redis_client):
    client = tokens.as_admin(create_app(make_settings(tmp_path, DEAD_REDIS_URL)).test_client())
    assert_error(client.get("/api/v1/jobs/" + "0" * 32), 503, "service_unavailable")


# --- health ---------------------------------------------------------------------------------------


def test_healthz(client):
    response = client.get("/healthz")
    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})


def test_readyz_without_a_worker(client):
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "not_ready"
    assert body["checks"]["redis"] == "ok"
    assert body["checks"]["blob_store"] == "ok"
    assert body["checks"]["records"] == "ok"
    assert "no worker" in body["checks"]["workers"]


def test_readyz_with_redis_down_answers_quickly(tmp_path, redis_client):
    client = tokens.as_admin(create_app(make_settings(tmp_path, DEAD_REDIS_URL)).test_client())
    started = time.monotonic()
    response = client.get("/readyz")
    assert time.monotonic() - started < 5
    assert response.status_code == 503
    checks = response.get_json()["checks"]
    # What is down, not the exception's text (which names the host and port).
    assert checks["redis"] == "unreachable"
    assert "127.0.0.1" not in response.get_data(as_text=True)
    assert checks["workers"] != "ok"
    assert checks["blob_store"] == checks["records"] == "ok"


def test_openapi_is_served(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    spec = response.get_json()
    assert spec["openapi"] == "3.1.0"
    assert "/api/v1/recognitions" in spec["paths"]
