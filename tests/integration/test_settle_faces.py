"""Settling the faces of a class photo through the real app, real Redis, real SQLite and real
tokens: assigning a face to a student or rejecting its match, the face's picture, who may do
each, what is refused; and, with a real worker running FaceNet, a recognition's evidence (box,
capture time from EXIF), learning a face (the student's embeddings grow) and a face too small
to learn."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from PIL import Image

from attendance.domain.keys import upload_key
from attendance.domain.schemas import (
    AttendanceRecord,
    Box,
    FaceMatch,
    PhotoResult,
    RecognitionResult,
)
from attendance.stores.blob import open_blob_store
from attendance.stores.jobs import JobStore
from attendance.stores.records import open_records
from tests import redis_db, tokens
from tests.conftest import FACES_DIR, REPO, make_stack
from tests.consent import CONSENT_FORM, give_consent

pytestmark = [pytest.mark.redis, pytest.mark.integration]

APP_DB = 1
DAY = "2026-11-02"
JOB = "a" * 32
ROLES = {
    "admin": tokens.ADMIN,
    "teacher": tokens.TEACHER,
    "room-1": tokens.ROOM1_TEACHER,
    "viewer": tokens.VIEWER,
}
# couple.jpg's two faces, as the worker boxes them (in its pixels).
LEFT = Box(x=329, y=491, w=631, h=850)
RIGHT = Box(x=1401, y=238, w=597, h=877)
TAKEN = "2026-11-02T08:55:00+01:00"


def face(box: Box, student_id=None, distance=None, outcome=None) -> FaceMatch:
    return FaceMatch(
        box=box,
        student_id=student_id,
        name=None,
        distance=distance,
        outcome=outcome or ("recognised" if student_id else "unknown"),
    )


def recognition(job_id: str, class_id: str = "room-1", period: str = "1") -> dict:
    """A room-1 recognition of period 1: couple.jpg with ann on the left (0.20) and an
    unknown face on the right; a second photo with ann again (0.30)."""
    return RecognitionResult(
        class_id=class_id,
        date=dt.date(2026, 11, 2),
        period=period,
        photos=[
            PhotoResult(
                filename="couple.jpg",
                faces=[face(LEFT, "ann", 0.20), face(RIGHT)],
                captured_at=dt.datetime.fromisoformat(TAKEN),
            ),
            PhotoResult(filename="again.jpg", faces=[face(LEFT, "ann", 0.30)]),
        ],
        present=["ann"],
        unknown_faces=1,
        model_version=1,
    ).model_dump(mode="json")


@pytest.fixture
def app(tmp_path):
    """The app with no worker: jobs are made in Redis as a worker leaves them."""
    s = make_stack(tmp_path, APP_DB)
    records = open_records(s.settings.records_url)
    records.upsert_student("ann", "Ann Example", "room-1")
    records.upsert_student("cara", "Cara Zed", "room-1")
    records.upsert_student("bob", "Bob Other", "room-2")
    jobs = JobStore.from_url(s.settings.redis_url, s.settings.job_ttl_seconds)
    blobs = open_blob_store(s.settings.blob_store_url, s.settings)
    jobs.create(JOB, "recognition", total=2, class_id="room-1")
    jobs.succeed(JOB, recognition(JOB))
    blobs.put(upload_key(JOB, 0, "jpg"), (FACES_DIR / "couple.jpg").read_bytes(), "image/jpeg")
    blobs.put(upload_key(JOB, 1, "jpg"), (FACES_DIR / "couple.jpg").read_bytes(), "image/jpeg")
    # What the recognition marked: ann, from her best face.
    records.mark_present(
        AttendanceRecord(
            class_id="room-1",
            date=dt.date(2026, 11, 2),
            period="1",
            student_id="ann",
            name="Ann Example",
            first_seen_at=dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC),
            distance=0.20,
            job_id=JOB,
            photo=0,
            face=0,
            box=LEFT,
            captured_at=dt.datetime.fromisoformat(TAKEN),
        )
    )
    s.jobs, s.blobs, s.records = jobs, blobs, records
    yield s
    redis_db.flush(redis_db.url_for(APP_DB))


def client(stack, role: str):
    c = stack.client.application.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {ROLES[role]}"
    return c


def assign(c, body, job=JOB, n=0, k=1, **kw):
    return c.post(
        f"/api/v1/jobs/{job}/photos/{n}/faces/{k}/assign",
        data=json.dumps(body) if not isinstance(body, str) else body,
        content_type=kw.pop("content_type", "application/json"),
        **kw,
    )


def error_code(resp, status: int) -> str:
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"error"} and body["error"]["message"]
    return body["error"]["code"]


def register_rows(c, period="1") -> dict[str, dict]:
    resp = c.get(f"/api/v1/attendance/room-1/{DAY}", query_string={"period": period})
    assert resp.status_code == 200, resp.get_json()
    return {r["student_id"]: r for r in resp.get_json()["rows"]}


def stored_face(stack, n: int, k: int) -> dict:
    return stack.jobs.get(JOB).result["photos"][n]["faces"][k]


# --- evidence in the register -------------------------------------------------------------------


def test_the_register_shows_a_face_marks_evidence_and_its_quality(app):
    ann = register_rows(client(app, "viewer"))["ann"]
    assert (ann["job_id"], ann["photo"], ann["face"], ann["box"]) == (
        JOB,
        0,
        0,
        LEFT.model_dump(),
    )
    assert dt.datetime.fromisoformat(ann["captured_at"]) == dt.datetime.fromisoformat(TAKEN)
    assert ann["match_quality"] == "strong"  # 0.20 against 0.45
    cara = register_rows(client(app, "viewer"))["cara"]
    assert (cara["status"], cara["photo"], cara["box"], cara["match_quality"]) == (
        "absent",
        None,
        None,
        None,
    )


# --- assigning and rejecting --------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "teacher", "room-1"])
def test_the_teacher_of_the_class_assigns_an_unknown_face(app, role):
    c = client(app, role)
    resp = assign(c, {"student_id": "cara"})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert set(body) == {"row", "face", "learn_job_id", "learn_status_url"}
    row = body["row"]
    assert (row["student_id"], row["status"], row["source"], row["marked_by"]) == (
        "cara",
        "present",
        "manual",
        role,
    )
    assert (row["job_id"], row["photo"], row["face"], row["box"]) == (JOB, 0, 1, RIGHT.model_dump())
    assert body["face"]["outcome"] == "assigned" and body["face"]["settled_by"] == role
    assert body["face"]["student_id"] == "cara" and body["face"]["name"] == "Cara Zed"
    assert body["learn_job_id"] is None and body["learn_status_url"] is None
    assert register_rows(c)["cara"]["source"] == "manual"

    # A reload of the job shows the settlement, with the student's name.
    job = c.get(f"/api/v1/jobs/{JOB}").get_json()
    settled = job["result"]["photos"][0]["faces"][1]
    assert (settled["outcome"], settled["student_id"], settled["name"], settled["settled_by"]) == (
        "assigned",
        "cara",
        "Cara Zed",
        role,
    )
    entry = app.records.list_audit(1)[0]
    assert (entry.action, entry.actor, entry.target) == ("assign_face", role, "cara")
    assert (entry.detail["status_before"], entry.detail["status_after"]) == (None, "present")


def test_rejecting_the_evidence_face_moves_the_mark_then_marks_absent(app):
    c = client(app, "room-1")
    resp = assign(c, {"student_id": None}, n=0, k=0)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert (body["face"]["outcome"], body["face"]["student_id"]) == ("rejected", None)
    row = body["row"]
    assert (row["student_id"], row["status"], row["source"], row["photo"], row["face"]) == (
        "ann",
        "present",
        "face",
        1,
        0,
    )
    assert row["distance"] == 0.30
    assert app.records.list_audit(1)[0].action == "reject_face"

    row = assign(c, {"student_id": None}, n=1, k=0).get_json()["row"]
    assert (row["status"], row["source"], row["note"], row["photo"]) == (
        "absent",
        "manual",
        "the face match was rejected",
        None,
    )
    assert register_rows(c)["ann"]["status"] == "absent"


def test_rejecting_a_face_that_matched_nobody_answers_no_row(app):
    resp = assign(client(app, "room-1"), {"student_id": None})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["row"] is None
    assert stored_face(app, 0, 1)["outcome"] == "rejected"


def test_a_late_mark_stays_late_and_a_teachers_other_mark_survives_a_reject(app):
    c = client(app, "room-1")
    put = c.put(
        f"/api/v1/attendance/room-1/{DAY}/cara",
        json={"status": "late", "period": "1", "note": "bus"},
    )
    assert put.status_code == 200, put.get_json()
    row = assign(c, {"student_id": "cara"}).get_json()["row"]
    assert (row["status"], row["note"], row["photo"], row["face"]) == ("late", "bus", 0, 1)

    put = c.put(f"/api/v1/attendance/room-1/{DAY}/ann", json={"status": "excused", "period": "1"})
    assert put.status_code == 200
    row = assign(c, {"student_id": None}, n=0, k=0).get_json()["row"]
    assert (row["status"], row["source"]) == ("excused", "manual")


def test_after_sign_off_a_teacher_is_refused_and_an_admin_corrects(app):
    c = client(app, "room-1")
    assert (
        c.post(f"/api/v1/attendance/room-1/{DAY}/finalize", json={"period": "1"}).status_code == 200
    )
    assert error_code(assign(c, {"student_id": "cara"}), 409) == "register_finalized"
    assert error_code(assign(c, {"student_id": None}, k=0), 409) == "register_finalized"
    assert stored_face(app, 0, 1)["outcome"] == "unknown"
    assert register_rows(c)["cara"]["status"] == "absent"

    resp = assign(client(app, "admin"), {"student_id": "cara"})
    assert resp.status_code == 200, resp.get_json()
    entry = app.records.list_audit(1)[0]
    assert (entry.action, entry.actor, entry.detail["correction"]) == ("assign_face", "admin", True)
    assert register_rows(c)["cara"]["status"] == "present"


def test_a_viewer_and_a_teacher_of_another_class_may_not_settle(app):
    assert error_code(assign(client(app, "viewer"), {"student_id": "cara"}), 403) == "forbidden"
    other = "b" * 32
    app.jobs.create(other, "recognition", total=2, class_id="room-2")
    app.jobs.succeed(other, recognition(other, class_id="room-2"))
    resp = assign(client(app, "room-1"), {"student_id": "bob"}, job=other)
    assert error_code(resp, 403) == "class_forbidden"
    for role in ("viewer", "room-1"):
        resp = client(app, role).get(f"/api/v1/jobs/{other}/photos/0/faces/0/image")
        assert resp.status_code == 403
    assert stored_face(app, 0, 1)["outcome"] == "unknown"
    assert app.records.list_audit(10) == []


@pytest.mark.parametrize(
    "n, k, code",
    [
        (2, 0, "photo_not_found"),
        ("x", 0, "photo_not_found"),
        (0, 2, "face_not_found"),
        (0, "99999999999", "face_not_found"),
    ],
)
def test_a_photo_or_face_the_job_has_not_is_404(app, n, k, code):
    assert error_code(assign(client(app, "admin"), {"student_id": "cara"}, n=n, k=k), 404) == code
    resp = client(app, "admin").get(f"/api/v1/jobs/{JOB}/photos/{n}/faces/{k}/image")
    assert error_code(resp, 404) == code


def test_an_unknown_or_malformed_job_is_404(app):
    for job in ("c" * 32, "not-a-job"):
        resp = assign(client(app, "admin"), {"student_id": "cara"}, job=job)
        assert error_code(resp, 404) == "job_not_found"


@pytest.mark.parametrize(
    "student, code", [("zed", "unknown_student"), ("bob", "student_not_in_class")]
)
def test_a_student_not_in_the_class_is_404(app, student, code):
    assert error_code(assign(client(app, "admin"), {"student_id": student}), 404) == code
    assert stored_face(app, 0, 1)["outcome"] == "unknown"
    assert app.records.get_mark("room-1", dt.date(2026, 11, 2), "1", student) is None


def test_an_unfinished_job_or_an_enrollment_has_no_faces_to_settle(app):
    queued, enrollment = "d" * 32, "e" * 32
    app.jobs.create(queued, "recognition", total=1, class_id="room-1")
    app.jobs.create(enrollment, "enrollment", total=1, class_id="room-1")
    app.jobs.succeed(
        enrollment, {"student_id": "ann", "accepted_photos": 1, "rejected": [], "model_version": 2}
    )
    for job in (queued, enrollment):
        resp = assign(client(app, "admin"), {"student_id": "cara"}, job=job, n=0, k=0)
        assert error_code(resp, 409) == "job_not_finished"
        resp = client(app, "admin").get(f"/api/v1/jobs/{job}/photos/0/faces/0/image")
        assert error_code(resp, 409) == "job_not_finished"


@pytest.mark.parametrize(
    "body, code",
    [
        ({"student_id": "cara", "colour": "red"}, "invalid_request"),
        ({}, "missing_student_id"),
        ({"student_id": "cara", "learn": "yes"}, "invalid_learn"),
        ({"student_id": "cara", "learn": 1}, "invalid_learn"),
        ({"student_id": None, "learn": True}, "invalid_learn"),
        ({"student_id": 7}, "invalid_student_id"),
        ({"student_id": "-cara"}, "invalid_student_id"),
        ({"student_id": "../x"}, "invalid_student_id"),
    ],
)
def test_bad_input_is_400_and_changes_nothing(app, body, code):
    assert error_code(assign(client(app, "room-1"), body), 400) == code
    assert stored_face(app, 0, 1)["outcome"] == "unknown"
    assert app.records.list_audit(10) == []


@pytest.mark.parametrize("data", ['{"student_id": "cara"', '["cara"]', "student_id=cara"])
def test_a_body_that_is_not_a_json_object_is_415(app, data):
    resp = assign(client(app, "room-1"), data, content_type="application/json")
    assert error_code(resp, 415) == "unsupported_media_type"


def test_two_teachers_settling_two_faces_at_once_both_stay(app):
    from concurrent.futures import ThreadPoolExecutor

    def settle(args):
        n, k, student = args
        return assign(client(app, "room-1"), {"student_id": student}, n=n, k=k).status_code

    for _ in range(3):
        with ThreadPoolExecutor(2) as pool:
            codes = list(pool.map(settle, [(0, 1, "cara"), (1, 0, None)]))
        assert codes == [200, 200]
        assert stored_face(app, 0, 1)["outcome"] == "assigned"
        assert stored_face(app, 1, 0)["outcome"] == "rejected"


def test_a_later_recognition_does_not_override_an_assignment(app):
    c = client(app, "room-1")
    assert assign(c, {"student_id": "cara"}).status_code == 200
    later = app.records.get_mark("room-1", dt.date(2026, 11, 2), "1", "cara").model_copy(
        update={"source": "face", "job_id": "f" * 32, "photo": 5, "marked_by": None}
    )
    assert app.records.mark_present(later) is False
    cara = register_rows(c)["cara"]
    assert (cara["source"], cara["job_id"], cara["photo"]) == ("manual", JOB, 0)


# --- the face's picture -------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "teacher", "room-1"])
def test_a_face_is_served_as_a_small_jpeg_cut_from_the_photo(app, role):
    resp = client(app, role).get(f"/api/v1/jobs/{JOB}/photos/0/faces/1/image")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.mimetype == "image/jpeg"
    assert resp.headers["Cache-Control"].startswith("private")
    img = Image.open(io.BytesIO(resp.data))
    assert max(img.size) <= 256
    # The right face's box with its margin keeps its shape (597 x 877, taller than wide).
    assert img.size[1] > img.size[0]


def test_a_purged_photo_is_410(app):
    give_consent(app.records, "cara")
    app.blobs.delete(upload_key(JOB, 0, "jpg"))
    resp = client(app, "room-1").get(f"/api/v1/jobs/{JOB}/photos/0/faces/1/image")
    assert error_code(resp, 410) == "photo_expired"
    resp = assign(client(app, "room-1"), {"student_id": "cara", "learn": True})
    assert error_code(resp, 410) == "photo_expired"
    # Refused before anything changed.
    assert stored_face(app, 0, 1)["outcome"] == "unknown"
    assert app.records.get_mark("room-1", dt.date(2026, 11, 2), "1", "cara") is None
    # The other photo is still there.
    assert (
        client(app, "room-1").get(f"/api/v1/jobs/{JOB}/photos/1/faces/0/image").status_code == 200
    )


def test_learning_a_face_needs_the_student_s_consent_and_is_refused_at_once(app):
    c = client(app, "room-1")
    resp = assign(c, {"student_id": "cara", "learn": True})
    assert error_code(resp, 409) == "consent_required"
    assert "no consent" in resp.get_json()["error"]["message"]
    # Refused before anything changed: no mark, the face as it was, no enrollment queued.
    assert stored_face(app, 0, 1)["outcome"] == "unknown"
    assert app.records.get_mark("room-1", dt.date(2026, 11, 2), "1", "cara") is None
    assert "learn_face" not in [e.action for e in app.records.list_audit()]
    give_consent(app.records, "cara")
    app.records.withdraw_consent("cara", "admin", dt.datetime.now(dt.UTC))
    resp = assign(c, {"student_id": "cara", "learn": True})
    assert error_code(resp, 409) == "consent_required"
    assert "withdrawn" in resp.get_json()["error"]["message"]
    # Without learning, a student without consent is still marked from the face.
    resp = assign(c, {"student_id": "cara"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()["row"]["status"] == "present"


# --- with a real worker: evidence, EXIF, learning -----------------------------------------------


def _with_exif(path, taken: str, offset: str | None) -> bytes:
    img = Image.open(path)
    exif = Image.Exif()
    ifd = exif.get_ifd(0x8769)
    ifd[0x9003] = taken
    if offset:
        ifd[0x9011] = offset
    out = io.BytesIO()
    img.save(out, format="JPEG", exif=exif, quality=92)
    return out.getvalue()


def _enroll(s, student_id: str, name: str, photos: list[str]) -> None:
    resp = s.client.post(
        "/api/v1/students",
        data={
            "student_id": student_id,
            "name": name,
            "class_id": "room-1",
            **CONSENT_FORM,
            "photos": [(io.BytesIO((FACES_DIR / p).read_bytes()), p) for p in photos],
        },
        content_type="multipart/form-data",
    )
    assert resp.status_code == 202, resp.get_json()
    job = s.wait_for_job(resp.get_json()["job_id"])
    assert job["state"] == "succeeded", job


def _recognise(s, data: bytes, filename: str, period: str) -> dict:
    resp = client(s, "room-1").post(
        "/api/v1/recognitions",
        data={
            "class_id": "room-1",
            "date": DAY,
            "period": period,
            "photos": [(io.BytesIO(data), filename)],
        },
        content_type="multipart/form-data",
    )
    assert resp.status_code == 202, resp.get_json()
    job = s.wait_for_job(resp.get_json()["job_id"])
    assert job["state"] == "succeeded", job
    return job


def _embeddings(s, student_id: str) -> int:
    resp = s.client.get(f"/api/v1/students/{student_id}")
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["embeddings"]


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.timeout(900)
def test_evidence_exif_learning_and_a_face_too_small_to_learn(stack):
    s = stack
    _enroll(s, "jolie", "Angelina Jolie", ["img2.jpg", "img4.jpg", "img5.jpg", "img6.jpg"])
    enrolled = _embeddings(s, "jolie")

    # The recognition's evidence: her face's box and the photo's EXIF capture time.
    photo = _with_exif(FACES_DIR / "couple.jpg", "2026:11:02 08:55:00", "+01:00")
    job = _recognise(s, photo, "couple.jpg", "1")
    faces = job["result"]["photos"][0]["faces"]
    [k] = [i for i, f in enumerate(faces) if f["student_id"] == "jolie"]
    row = register_rows(client(s, "room-1"))["jolie"]
    assert (row["source"], row["job_id"], row["photo"], row["face"]) == (
        "face",
        job["job_id"],
        0,
        k,
    )
    assert row["box"] == faces[k]["box"]
    assert dt.datetime.fromisoformat(row["captured_at"]) == dt.datetime.fromisoformat(TAKEN)
    assert row["match_quality"] in ("strong", "borderline")
    # When it was processed stays apart from when it was taken.
    mark = open_records(s.settings.records_url).get_mark(
        "room-1", dt.date(2026, 11, 2), "1", "jolie"
    )
    assert mark.captured_at == dt.datetime.fromisoformat(TAKEN)
    assert mark.first_seen_at > dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)

    # Her face's picture is cut from the upload where the box says.
    resp = client(s, "room-1").get(f"/api/v1/jobs/{job['job_id']}/photos/0/faces/{k}/image")
    assert resp.status_code == 200 and resp.mimetype == "image/jpeg"

    # A photo without EXIF has no capture time.
    plain = _recognise(s, (FACES_DIR / "couple.jpg").read_bytes(), "couple.jpg", "2")
    assert register_rows(client(s, "room-1"), "2")["jolie"]["captured_at"] is None
    assert plain["result"]["photos"][0]["captured_at"] is None

    # Learn her face from the class photo: an enrollment adding it to her photos.
    resp = assign(
        client(s, "room-1"), {"student_id": "jolie", "learn": True}, job=job["job_id"], k=k
    )
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert (
        body["learn_job_id"] and body["learn_status_url"] == f"/api/v1/jobs/{body['learn_job_id']}"
    )
    learnt = s.wait_for_job(body["learn_job_id"])
    assert learnt["state"] == "succeeded", learnt["error"]
    assert learnt["result"]["accepted_photos"] == 1
    assert _embeddings(s, "jolie") == enrolled + 1
    records = open_records(s.settings.records_url)
    assert "learn_face" in [e.action for e in records.list_audit(20)]
    # What was filed for her is the face, not the class photo.
    blobs = open_blob_store(s.settings.blob_store_url, s.settings)
    filed = [key for key in blobs.list("students/jolie/") if body["learn_job_id"] in key]
    assert any("/jobs/" not in key for key in filed)
    for key in filed:
        if "/jobs/" not in key:
            img = Image.open(io.BytesIO(blobs.get(key)))
            assert max(img.size) < 2000 and img.size != Image.open(FACES_DIR / "couple.jpg").size

    # A face too small to enroll: the enrollment says so, and her embeddings stay.
    crowd = (REPO / "tests" / "data" / "groups" / "retina_img3.jpg").read_bytes()
    job = _recognise(s, crowd, "crowd.jpg", "3")
    faces = job["result"]["photos"][0]["faces"]
    small = min(range(len(faces)), key=lambda i: faces[i]["box"]["w"])
    assert faces[small]["box"]["w"] < s.settings.enroll_min_face_px
    resp = assign(
        client(s, "room-1"), {"student_id": "jolie", "learn": True}, job=job["job_id"], k=small
    )
    assert resp.status_code == 200, resp.get_json()
    failed = s.wait_for_job(resp.get_json()["learn_job_id"])
    assert failed["state"] == "failed", failed
    assert failed["error"]["code"] == "no_usable_photo"
    assert "crowd.jpg: the face is too small" in failed["error"]["message"]
    assert _embeddings(s, "jolie") == enrolled + 1

    # Erasing her finds what the learning filed (the face and the enrollment's marker); the
    # class photo it read is the class's, and stays until its own retention.
    resp = s.client.delete("/api/v1/students/jolie")
    assert resp.status_code == 200, resp.get_json()
    assert blobs.list("students/jolie/") == []
    assert blobs.list(f"uploads/{job['job_id']}/")


def test_a_job_changed_while_a_change_is_made_is_changed_again_not_overwritten(app):
    """Another writer saves the job between this change's read and write: the change runs
    again on what the other wrote, so both stay."""
    calls = []

    def change(job):
        calls.append(job.result["photos"][0]["faces"][1]["outcome"])
        if len(calls) == 1:
            app.jobs.update_result(JOB, lambda other: _set(other, 1, 0, "rejected"))
        _set(job, 0, 1, "assigned")

    app.jobs.update_result(JOB, change)
    assert len(calls) == 2
    assert stored_face(app, 0, 1)["outcome"] == "assigned"
    assert stored_face(app, 1, 0)["outcome"] == "rejected"
    assert app.jobs.redis.ttl(f"attendance:job:{JOB}") > 0


def _set(job, n: int, k: int, outcome: str) -> None:
    job.result["photos"][n]["faces"][k]["outcome"] = outcome


def test_the_answers_are_what_the_document_says(app):
    """The fuzzer's random job ids never reach a 200 here: check the real answers' bodies."""
    from openapi_schema_validator import OAS31Validator
    from referencing import Registry, Resource

    spec = app.client.get("/api/v1/openapi.json").get_json()
    registry = Registry().with_resource("spec", Resource.opaque(spec))
    path = "/api/v1/jobs/{job_id}/photos/{n}/faces/{k}/assign"

    def check(resp, path: str, method: str) -> None:
        responses = spec["paths"][path][method]["responses"]
        assert str(resp.status_code) in responses, resp.status_code
        documented = responses[str(resp.status_code)]["content"]["application/json"]["schema"]
        schema = {"$ref": f"spec#{documented['$ref'][1:]}"} if "$ref" in documented else documented
        OAS31Validator(schema, registry=registry).validate(resp.get_json())

    c = client(app, "room-1")
    check(assign(c, {"student_id": "cara"}), path, "post")
    check(assign(c, {"student_id": None}, k=0), path, "post")  # evidence moved
    check(assign(c, {"student_id": None}, n=1, k=0), path, "post")  # now absent
    check(assign(c, {"student_id": None}), path, "post")  # cara's assignment undone
    fresh = "b" * 32
    app.jobs.create(fresh, "recognition", total=2, class_id="room-1")
    app.jobs.succeed(fresh, recognition(fresh))
    check(assign(c, {"student_id": None}, job=fresh), path, "post")  # matched nobody: no row
    check(assign(c, {"student_id": "zed"}), path, "post")  # a 404
    check(
        c.get(f"/api/v1/attendance/room-1/{DAY}?period=1"),
        "/api/v1/attendance/{class_id}/{date}",
        "get",
    )
    check(c.get("/api/v1/attendance"), "/api/v1/attendance", "get")
