"""The register's API through the real app, real SQLite and real tokens: reading a register,
marking by hand, signing off, who may do each; and, with a real worker running FaceNet, that a
class photo never overwrites a teacher's mark."""

from __future__ import annotations

import datetime as dt
import io
import json
import subprocess

import pytest

from attendance.domain.schemas import AttendanceRecord
from attendance.stores.records import open_records
from tests import redis_db, tokens
from tests.conftest import make_stack
from tests.consent import CONSENT_FORM

pytestmark = [pytest.mark.redis, pytest.mark.integration]

# Databases no other suite uses (see tests/conftest.py and each suite's DB): the plain app's
# (it queues nothing but is flushed by make_stack) and the worker stack's.
APP_DB = 2
WORKER_DB = 3
DAY = "2026-11-02"
REGISTER = f"/api/v1/attendance/room-1/{DAY}"
ROLES = {
    "admin": tokens.ADMIN,
    "teacher": tokens.TEACHER,  # a teacher of every class
    "room-1": tokens.ROOM1_TEACHER,  # the teacher of room-1 only
    "viewer": tokens.VIEWER,
}
PUT_STUDENT = ("/api/v1/attendance/{class_id}/{date}/{student_id}", "put")
JOLIE_PHOTOS = ["img2.jpg", "img4.jpg", "img5.jpg", "img6.jpg"]


@pytest.fixture
def stack(tmp_path):
    s = make_stack(tmp_path, APP_DB)
    records = open_records(s.settings.records_url)
    records.upsert_student("cara", "Cara Zed", "room-1")
    records.upsert_student("ann", "Ann Example", "room-1")
    records.upsert_student("bob", "Bob Other", "room-2")
    records.mark_present(
        AttendanceRecord(
            class_id="room-1",
            date=dt.date(2026, 11, 2),
            student_id="cara",
            name="Cara Zed",
            first_seen_at=dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC),
            distance=0.25,
            job_id="f" * 32,
        )
    )
    yield s
    redis_db.flush(redis_db.url_for(APP_DB))


def records_of(stack):
    """The app's records store, as the tests look at it behind the API."""
    return open_records(stack.settings.records_url)


def client(stack, role: str):
    c = stack.client.application.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {ROLES[role]}"
    return c


def put(c, path: str, body, **kw):
    return c.put(path, data=json.dumps(body), content_type="application/json", **kw)


def error_code(resp, status: int) -> str:
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"error"} and body["error"]["message"]
    return body["error"]["code"]


def statuses(resp) -> dict[str, tuple]:
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return {r["student_id"]: (r["status"], r["source"]) for r in resp.get_json()["rows"]}


# --- reading a register -------------------------------------------------------------------------


def test_the_register_lists_the_class_by_name_with_absentees(stack):
    resp = client(stack, "viewer").get(REGISTER)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert (body["class_id"], body["date"], body["period"], body["finalized"]) == (
        "room-1",
        DAY,
        "",
        None,
    )
    assert [r["student_id"] for r in body["rows"]] == ["ann", "cara"]
    ann, cara = body["rows"]
    assert (ann["status"], ann["source"], ann["job_id"]) == ("absent", None, None)
    assert (cara["status"], cara["source"], cara["job_id"], cara["distance"]) == (
        "present",
        "face",
        "f" * 32,
        0.25,
    )


@pytest.mark.parametrize("role", ["admin", "teacher", "room-1", "viewer"])
def test_every_role_reads_the_register_of_a_class_it_may_see(stack, role):
    assert statuses(client(stack, role).get(REGISTER)) == {
        "ann": ("absent", None),
        "cara": ("present", "face"),
    }


def test_a_teacher_of_another_class_may_not_read_it(stack):
    resp = client(stack, "room-1").get(f"/api/v1/attendance/room-2/{DAY}")
    assert error_code(resp, 403) == "class_forbidden"


def test_reading_needs_a_token(stack):
    resp = stack.client.application.test_client().get(REGISTER)
    assert error_code(resp, 401) == "unauthorized"


@pytest.mark.parametrize(
    "path, code",
    [
        ("/api/v1/attendance/room-1/2026-02-30", "invalid_date"),
        ("/api/v1/attendance/room-1/20261102", "invalid_date"),
        (f"/api/v1/attendance/room-1/{DAY}?period=-x", "invalid_period"),
        (f"/api/v1/attendance/room-1/{DAY}?period={'p' * 33}", "invalid_period"),
        (f"/api/v1/attendance/.room/{DAY}", "invalid_class_id"),
    ],
)
def test_bad_register_keys_are_400(stack, path, code):
    assert error_code(client(stack, "admin").get(path), 400) == code


def test_a_class_nobody_is_in_has_no_register(stack):
    resp = client(stack, "admin").get(f"/api/v1/attendance/room-9/{DAY}")
    assert error_code(resp, 404) == "unknown_class"


# --- marking by hand ----------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "teacher", "room-1"])
def test_the_teacher_of_the_class_or_an_admin_marks_by_hand(stack, role):
    c = client(stack, role)
    resp = put(c, f"{REGISTER}/cara", {"status": "late", "note": "bus"})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert (body["before"]["status"], body["before"]["source"]) == ("present", "face")
    after = body["after"]
    assert (after["status"], after["source"], after["marked_by"], after["note"]) == (
        "late",
        "manual",
        role,
        "bus",
    )
    assert dt.datetime.fromisoformat(after["marked_at"]) <= dt.datetime.now(dt.UTC)
    assert statuses(c.get(REGISTER))["cara"] == ("late", "manual")

    # Nothing had marked ann: before is null.
    resp = put(c, f"{REGISTER}/ann", {"status": "excused"})
    assert resp.status_code == 200 and resp.get_json()["before"] is None

    entry = records_of(stack).list_audit(1)[0]
    assert (entry.actor, entry.action, entry.target) == (role, "mark_attendance", "ann")
    assert entry.detail["status_before"] is None and entry.detail["status_after"] == "excused"


def test_a_viewer_may_not_mark_and_a_teacher_only_their_classes(stack):
    resp = put(client(stack, "viewer"), f"{REGISTER}/cara", {"status": "absent"})
    assert error_code(resp, 403) == "forbidden"
    resp = put(
        client(stack, "room-1"), f"/api/v1/attendance/room-2/{DAY}/bob", {"status": "absent"}
    )
    assert error_code(resp, 403) == "class_forbidden"
    assert statuses(client(stack, "admin").get(REGISTER))["cara"] == ("present", "face")
    assert records_of(stack).get_mark("room-2", dt.date(2026, 11, 2), "", "bob") is None
    assert records_of(stack).list_audit(10) == []


def test_marks_of_a_period_stay_in_that_periods_register(stack):
    c = client(stack, "room-1")
    assert put(c, f"{REGISTER}/ann", {"status": "late", "period": "P3 maths"}).status_code == 200
    assert statuses(c.get(REGISTER, query_string={"period": "P3 maths"})) == {
        "ann": ("late", "manual"),
        "cara": ("absent", None),
    }
    assert statuses(c.get(REGISTER))["ann"] == ("absent", None)
    listed = c.get("/api/v1/attendance", query_string={"period": "P3 maths"}).get_json()
    assert [(r["student_id"], r["period"], r["status"]) for r in listed["records"]] == [
        ("ann", "P3 maths", "late")
    ]
    whole_day = c.get("/api/v1/attendance", query_string={"period": ""}).get_json()["records"]
    assert [(r["student_id"], r["period"]) for r in whole_day] == [("cara", "")]


def test_the_csv_export_names_period_status_and_source(stack):
    c = client(stack, "room-1")
    put(c, f"{REGISTER}/ann", {"status": "excused", "period": "1"})
    resp = c.get("/api/v1/attendance", query_string={"class_id": "room-1", "format": "csv"})
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    lines = resp.get_data(as_text=True).lstrip("\ufeff").splitlines()
    header = lines[0].split(",")
    assert {"period", "status", "source"} <= set(header)
    rows = [dict(zip(header, line.split(","))) for line in lines[1:]]
    assert sorted((r["student_id"], r["period"], r["status"], r["source"]) for r in rows) == [
        ("ann", "1", "excused", "manual"),
        ("cara", "", "present", "face"),
    ]


def test_the_whole_register_exports_as_csv_and_xlsx_with_every_student(stack):
    from openpyxl import load_workbook

    records = records_of(stack)
    records.upsert_student("eve", '=HYPERLINK("http://evil.example/")', "room-1")
    c = client(stack, "room-1")
    put(c, f"{REGISTER}/ann", {"status": "late", "note": "+bus"})

    resp = c.get(REGISTER, query_string={"format": "csv"})
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert f"register-room-1-{DAY}.csv" in resp.headers["Content-Disposition"]
    lines = resp.get_data(as_text=True).lstrip("\ufeff").splitlines()
    assert lines[0] == "student_id,name,status,source,marked_by,marked_at,note"
    by_id = {line.split(",")[0]: line for line in lines[1:]}
    assert set(by_id) == {"ann", "cara", "eve"}  # absent students too
    assert by_id["eve"].startswith("eve,\"'=HYPERLINK(") and ",absent," in by_id["eve"]
    assert ",late,manual," in by_id["ann"] and by_id["ann"].endswith(",'+bus")

    resp = c.get(REGISTER, query_string={"format": "xlsx"})
    assert resp.status_code == 200 and resp.mimetype.endswith("spreadsheetml.sheet")
    sheet = load_workbook(io.BytesIO(resp.data)).active
    rows = list(sheet.iter_rows())
    assert [cell.value for cell in rows[0]] == [
        "student_id",
        "name",
        "status",
        "source",
        "marked_by",
        "marked_at",
        "note",
    ]
    cells = {row[0].value: row for row in rows[1:]}
    assert set(cells) == {"ann", "cara", "eve"}
    eve_name = cells["eve"][1]
    # Stored as text as typed, never as a formula a spreadsheet would run.
    assert (eve_name.value, eve_name.data_type) == ('=HYPERLINK("http://evil.example/")', "s")
    assert [cells["ann"][i].value for i in (2, 3, 6)] == ["late", "manual", "+bus"]
    assert cells["cara"][2].value == "present" and cells["eve"][2].value == "absent"

    actions = [e.action for e in records.list_audit()]
    assert actions.count("export_register") == 2


def test_a_viewer_reads_the_register_but_may_not_export_it(stack):
    c = client(stack, "viewer")
    assert c.get(REGISTER).status_code == 200
    for fmt in ("csv", "xlsx"):
        assert error_code(c.get(REGISTER, query_string={"format": fmt}), 403) == "forbidden"
    assert error_code(c.get(REGISTER, query_string={"format": "pdf"}), 400) == "invalid_format"


@pytest.mark.parametrize(
    "student, code",
    [("zed", "unknown_student"), ("bob", "student_not_in_class")],
)
def test_marking_someone_not_in_the_class_is_404(stack, student, code):
    resp = put(client(stack, "admin"), f"{REGISTER}/{student}", {"status": "present"})
    assert error_code(resp, 404) == code
    assert records_of(stack).get_mark("room-1", dt.date(2026, 11, 2), "", student) is None


@pytest.mark.parametrize(
    "body, code, mention",
    [
        ({"status": "asleep"}, "invalid_request", "status"),
        ({}, "invalid_request", "status"),
        ({"status": "late", "colour": "red"}, "invalid_request", "colour"),
        ({"status": 1}, "invalid_request", "status"),
        ({"status": "late", "period": "-1"}, "invalid_period", "period"),
        ({"status": "late", "period": 3}, "invalid_request", "period"),
        ({"status": "late", "note": "x" * 501}, "invalid_request", "note"),
    ],
)
def test_a_bad_mark_is_400_and_changes_nothing(stack, body, code, mention):
    resp = put(client(stack, "room-1"), f"{REGISTER}/cara", body)
    assert error_code(resp, 400) == code
    assert mention in resp.get_json()["error"]["message"]
    assert statuses(client(stack, "admin").get(REGISTER))["cara"] == ("present", "face")
    assert records_of(stack).list_audit(10) == []


def test_a_mark_on_a_bad_date_or_student_id_is_400(stack):
    c = client(stack, "admin")
    resp = put(c, "/api/v1/attendance/room-1/2026-13-01/cara", {"status": "late"})
    assert error_code(resp, 400) == "invalid_date"
    resp = put(c, f"{REGISTER}/-cara", {"status": "late"})
    assert error_code(resp, 400) == "invalid_student_id"


@pytest.mark.parametrize(
    "data, content_type",
    [
        ("status=late", "application/x-www-form-urlencoded"),
        ('{"status": "late"', "application/json"),
        ('["late"]', "application/json"),
        ("", None),
    ],
)
def test_a_mark_that_is_not_a_json_object_is_415(stack, data, content_type):
    resp = client(stack, "admin").put(f"{REGISTER}/cara", data=data, content_type=content_type)
    assert error_code(resp, 415) == "unsupported_media_type"


# --- signing off --------------------------------------------------------------------------------


def test_after_sign_off_a_teacher_is_refused_and_an_admin_corrects(stack):
    teacher = client(stack, "room-1")
    resp = teacher.post(f"{REGISTER}/finalize")
    assert resp.status_code == 200, resp.get_json()
    lock = resp.get_json()
    assert (lock["class_id"], lock["date"], lock["period"], lock["finalized_by"]) == (
        "room-1",
        DAY,
        "",
        "room-1",
    )
    assert teacher.get(REGISTER).get_json()["finalized"] == lock
    entry = records_of(stack).list_audit(1)[0]
    assert (entry.action, entry.actor, entry.target) == ("finalize_register", "room-1", "room-1")

    # Again: nothing changes, the first sign-off stands.
    again = client(stack, "admin").post(f"{REGISTER}/finalize", json={"period": ""})
    assert again.status_code == 200 and again.get_json() == lock

    resp = put(teacher, f"{REGISTER}/cara", {"status": "absent"})
    assert error_code(resp, 409) == "register_finalized"
    resp = put(client(stack, "teacher"), f"{REGISTER}/ann", {"status": "late"})
    assert error_code(resp, 409) == "register_finalized"
    assert statuses(teacher.get(REGISTER)) == {"ann": ("absent", None), "cara": ("present", "face")}

    resp = put(client(stack, "admin"), f"{REGISTER}/cara", {"status": "excused", "note": "doctor"})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["before"]["status"] == "present"
    assert resp.get_json()["after"]["marked_by"] == "admin"
    assert statuses(teacher.get(REGISTER))["cara"] == ("excused", "manual")
    entry = records_of(stack).list_audit(1)[0]
    assert (entry.action, entry.actor, entry.target) == ("correct_attendance", "admin", "cara")
    assert entry.detail == {
        "class_id": "room-1",
        "date": DAY,
        "period": "",
        "status_before": "present",
        "status_after": "excused",
        "note": "doctor",
    }


def test_signing_off_a_period_leaves_the_others_open(stack):
    teacher = client(stack, "room-1")
    resp = teacher.post(f"{REGISTER}/finalize", json={"period": "1"})
    assert resp.status_code == 200 and resp.get_json()["period"] == "1"
    assert error_code(put(teacher, f"{REGISTER}/ann", {"status": "late", "period": "1"}), 409)
    assert put(teacher, f"{REGISTER}/ann", {"status": "late", "period": "2"}).status_code == 200
    assert put(teacher, f"{REGISTER}/ann", {"status": "late"}).status_code == 200
    assert teacher.get(REGISTER).get_json()["finalized"] is None


@pytest.mark.parametrize("role, status", [("viewer", 403), ("room-1", 403)])
def test_who_may_not_sign_off(stack, role, status):
    path = REGISTER if role == "viewer" else f"/api/v1/attendance/room-2/{DAY}"
    resp = client(stack, role).post(f"{path}/finalize")
    assert resp.status_code == status, resp.get_json()
    for class_id in ("room-1", "room-2"):
        assert records_of(stack).register_lock(class_id, dt.date(2026, 11, 2), "") is None


@pytest.mark.parametrize("role", ["admin", "teacher"])
def test_an_admin_or_a_teacher_of_every_class_signs_off(stack, role):
    resp = client(stack, role).post(f"/api/v1/attendance/room-2/{DAY}/finalize")
    assert resp.status_code == 200 and resp.get_json()["finalized_by"] == role


@pytest.mark.parametrize(
    "kwargs, status, code",
    [
        ({"json": {"period": "-1"}}, 400, "invalid_period"),
        ({"json": {"period": 1}}, 400, "invalid_period"),
        ({"json": {"period": "1", "all": True}}, 400, "invalid_request"),
        ({"json": ["1"]}, 415, "unsupported_media_type"),
        ({"data": "period=1", "content_type": "text/plain"}, 415, "unsupported_media_type"),
    ],
)
def test_a_bad_sign_off_is_refused(stack, kwargs, status, code):
    resp = client(stack, "admin").post(f"{REGISTER}/finalize", **kwargs)
    assert error_code(resp, status) == code
    assert records_of(stack).register_lock("room-1", dt.date(2026, 11, 2), "") is None
    assert records_of(stack).register_lock("room-1", dt.date(2026, 11, 2), "1") is None


def test_a_class_nobody_is_in_cannot_be_signed_off(stack):
    resp = client(stack, "admin").post(f"/api/v1/attendance/room-9/{DAY}/finalize")
    assert error_code(resp, 404) == "unknown_class"
    resp = client(stack, "admin").post("/api/v1/attendance/room-1/2026-11-31/finalize")
    assert error_code(resp, 400) == "invalid_date"


# --- a class photo after a teacher's mark, on a real worker -------------------------------------


@pytest.fixture(scope="module")
def worker_stack(tmp_path_factory):
    s = make_stack(tmp_path_factory.mktemp("register-worker"), WORKER_DB)
    s.worker = s.start_worker("reg")
    yield s
    s.worker.terminate()
    try:
        s.worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        s.worker.kill()
        s.worker.wait()
    redis_db.flush(redis_db.url_for(WORKER_DB))


def _files(faces_dir, names):
    return [(io.BytesIO((faces_dir / n).read_bytes()), n) for n in names]


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.timeout(900)
def test_a_recognition_never_overwrites_a_teachers_mark(worker_stack, faces_dir):
    s = worker_stack
    resp = s.client.post(
        "/api/v1/students",
        data={
            "student_id": "jolie",
            "name": "Angelina Jolie",
            "class_id": "room-1",
            "photos": _files(faces_dir, JOLIE_PHOTOS),
            **CONSENT_FORM,
        },
        content_type="multipart/form-data",
    )
    assert resp.status_code == 202, resp.get_json()
    job = s.wait_for_job(resp.get_json()["job_id"])
    assert job["state"] == "succeeded", job

    teacher = client(s, "room-1")
    resp = put(teacher, f"{REGISTER}/jolie", {"status": "excused", "period": "1", "note": "trip"})
    assert resp.status_code == 200, resp.get_json()

    def recognise(period: str) -> dict:
        resp = teacher.post(
            "/api/v1/recognitions",
            data={
                "class_id": "room-1",
                "date": DAY,
                "period": period,
                "photos": _files(faces_dir, ["couple.jpg"]),
            },
            content_type="multipart/form-data",
        )
        assert resp.status_code == 202, resp.get_json()
        job = s.wait_for_job(resp.get_json()["job_id"])
        assert job["state"] == "succeeded", job
        return job

    # She is in the photo and recognised, but the teacher's mark of period 1 stands.
    job = recognise("1")
    assert job["result"]["present"] == ["jolie"]
    [row] = teacher.get(REGISTER, query_string={"period": "1"}).get_json()["rows"]
    assert (row["status"], row["source"], row["note"], row["job_id"]) == (
        "excused",
        "manual",
        "trip",
        None,
    )

    # The same photo for period 2, which nobody marked: the face marks her present there.
    job = recognise("2")
    [row] = teacher.get(REGISTER, query_string={"period": "2"}).get_json()["rows"]
    assert (row["status"], row["source"], row["job_id"]) == ("present", "face", job["job_id"])
    assert row["distance"] < s.settings.match_threshold
    # And the whole day's register was never touched by either.
    [row] = teacher.get(REGISTER).get_json()["rows"]
    assert (row["status"], row["source"]) == ("absent", None)


def test_a_recognition_with_a_bad_period_is_400(stack):
    resp = client(stack, "room-1").post(
        "/api/v1/recognitions",
        data={"class_id": "room-1", "period": "-1", "photos": [(io.BytesIO(b"x"), "x.png")]},
        content_type="multipart/form-data",
    )
    assert error_code(resp, 400) == "invalid_period"


def test_a_student_called_finalize_is_marked_at_the_sign_offs_url(stack):
    records_of(stack).upsert_student("finalize", "Fin Alize", "room-1")
    teacher = client(stack, "room-1")
    resp = put(teacher, f"{REGISTER}/finalize", {"status": "late"})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["after"]["student_id"] == "finalize"
    assert statuses(teacher.get(REGISTER))["finalize"] == ("late", "manual")
    assert teacher.get(REGISTER).get_json()["finalized"] is None
    # Signing off is still POST there.
    assert teacher.post(f"{REGISTER}/finalize").status_code == 200
    resp = put(teacher, f"/api/v1/attendance/room-2/{DAY}/finalize", {"status": "late"})
    assert error_code(resp, 403) == "class_forbidden"


def test_the_answers_are_what_the_document_says(stack):
    """The fuzzer's random ids seldom reach a 200 here: check the real answers' bodies."""
    from openapi_schema_validator import OAS31Validator
    from referencing import Registry, Resource

    spec = stack.client.get("/api/v1/openapi.json").get_json()
    registry = Registry().with_resource("spec", Resource.opaque(spec))

    def check(resp, path: str, method: str) -> None:
        responses = spec["paths"][path][method]["responses"]
        documented = responses[str(resp.status_code)]["content"]["application/json"]["schema"]
        schema = {"$ref": f"spec#{documented['$ref'][1:]}"} if "$ref" in documented else documented
        OAS31Validator(schema, registry=registry).validate(resp.get_json())

    teacher = client(stack, "room-1")
    marked = put(teacher, f"{REGISTER}/ann", {"status": "late", "period": "1", "note": None})
    check(marked, *PUT_STUDENT)
    check(put(teacher, f"{REGISTER}/cara", {"status": "absent"}), *PUT_STUDENT)
    check(
        teacher.post(f"{REGISTER}/finalize"),
        "/api/v1/attendance/{class_id}/{date}/finalize",
        "post",
    )
    check(teacher.get(REGISTER), "/api/v1/attendance/{class_id}/{date}", "get")
    check(put(teacher, f"{REGISTER}/cara", {"status": "late"}), *PUT_STUDENT)  # the 409
    check(teacher.get("/api/v1/attendance"), "/api/v1/attendance", "get")
