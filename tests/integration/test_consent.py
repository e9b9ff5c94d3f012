"""Consent through the real API, a real worker running FaceNet and real stores: recording it
(who may, what is refused), enrollment refused without it and nothing stored, a withdrawal
that erases the student's face data and keeps the student and their attendance, students put
on the roster without photos, and templates that expire."""

from __future__ import annotations

import datetime as dt
import io
import json
import time
from pathlib import Path

import pytest

from attendance.domain.schemas import AttendanceRecord
from attendance.services.retention import RETENTION_ACTOR, expire_templates
from attendance.stores.blob import open_blob_store
from attendance.stores.records import open_records
from tests import tokens
from tests.consent import CONSENT_FORM
from tests.integration.test_privacy import traces

pytestmark = [pytest.mark.redis, pytest.mark.integration]

ROLES = {
    "admin": tokens.ADMIN,
    "teacher": tokens.TEACHER,  # a teacher of every class
    "room-1": tokens.ROOM1_TEACHER,  # the teacher of room-1 only
    "viewer": tokens.VIEWER,
}
JOLIE = ("img2.jpg", "img4.jpg")
CONSENT_JSON = {
    "consent_given_by": "A. Parent",
    "consent_relationship": "guardian",
    "consent_given_on": "2026-09-01",
    "minor": True,
}


def client(stack, role: str):
    c = stack.client.application.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {ROLES[role]}"
    return c


def files(faces_dir: Path, names) -> list[tuple[io.BytesIO, str]]:
    return [(io.BytesIO((faces_dir / n).read_bytes()), n) for n in names]


def put_json(c, path: str, body):
    return c.put(path, data=json.dumps(body), content_type="application/json")


def error_code(resp, status: int) -> str:
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"error"} and body["error"]["message"]
    return body["error"]["code"]


def roster(stack, student_id: str, name: str, class_id: str):
    resp = stack.client.post(
        "/api/v1/students", json={"student_id": student_id, "name": name, "class_id": class_id}
    )
    assert resp.status_code in (200, 201), resp.get_json()
    return resp.get_json()


def enroll(stack, faces_dir, student_id: str, class_id: str, consent=CONSENT_FORM) -> dict:
    resp = stack.client.post(
        "/api/v1/students",
        data={
            "student_id": student_id,
            "name": "Angelina Jolie",
            "class_id": class_id,
            "photos": files(faces_dir, JOLIE),
            **consent,
        },
        content_type="multipart/form-data",
    )
    assert resp.status_code == 202, resp.get_json()
    return stack.wait_for_job(resp.get_json()["job_id"])


def recognise(stack, faces_dir, class_id: str, day: str) -> dict:
    resp = stack.client.post(
        "/api/v1/recognitions",
        data={"class_id": class_id, "date": day, "photos": files(faces_dir, ["couple.jpg"])},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 202, resp.get_json()
    job = stack.wait_for_job(resp.get_json()["job_id"])
    assert job["state"] == "succeeded", job
    return job


def stored(stack) -> list[str]:
    root = stack.root / "store"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def audit_actions(stack, target: str) -> list[tuple[str, str]]:
    entries = stack.client.get("/api/v1/audit?limit=1000").get_json()["entries"]
    return [(e["actor"], e["action"]) for e in entries if e["target"] == target]


# --- students on the roster without photos ------------------------------------------------------


def test_a_student_is_put_on_the_roster_without_photos_at_once(stack):
    resp = stack.client.post(
        "/api/v1/students", json={"student_id": "r-ann", "name": "Ann Roster", "class_id": "r-1"}
    )
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json() == {
        "student_id": "r-ann",
        "name": "Ann Roster",
        "class_ids": ["r-1"],
        "embeddings": 0,
        "consent": None,
        "face_data": False,
    }
    # Again, or into another class, under the same name: 200, the class added.
    again = stack.client.post(
        "/api/v1/students", json={"student_id": "r-ann", "name": "Ann Roster", "class_id": "r-2"}
    )
    assert again.status_code == 200 and again.get_json()["class_ids"] == ["r-1", "r-2"]
    taken = stack.client.post(
        "/api/v1/students", json={"student_id": "r-ann", "name": "Someone Else", "class_id": "r-1"}
    )
    assert error_code(taken, 409) == "student_exists"
    assert stack.client.get("/api/v1/students/r-ann").get_json()["name"] == "Ann Roster"
    # In the register, marked by hand.
    register = stack.client.get("/api/v1/attendance/r-1/2026-11-02").get_json()
    assert [(r["student_id"], r["status"]) for r in register["rows"]] == [("r-ann", "absent")]
    assert ("admin", "add_student") in audit_actions(stack, "r-ann")


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"student_id": "r-x", "name": "X"}, 400, "missing_class_id"),
        ({"name": "X", "class_id": "r-1"}, 400, "missing_student_id"),
        ({"student_id": "r-x", "class_id": "r-1"}, 400, "missing_name"),
        ({"student_id": "../etc", "name": "X", "class_id": "r-1"}, 400, "invalid_student_id"),
        ({"student_id": "r-x\n", "name": "X", "class_id": "r-1"}, 400, "invalid_student_id"),
        ({"student_id": "r-x", "name": "X", "class_id": "a/b"}, 400, "invalid_class_id"),
        ({"student_id": 7, "name": "X", "class_id": "r-1"}, 400, "invalid_student_id"),
        (
            {"student_id": "r-x", "name": "X", "class_id": "r-1", "photos": []},
            400,
            "invalid_request",
        ),
        (["r-x"], 415, "unsupported_media_type"),
    ],
)
def test_a_bad_roster_entry_is_refused_and_stores_nothing(stack, body, status, code):
    resp = stack.client.post("/api/v1/students", json=body)
    assert error_code(resp, status) == code
    assert stack.client.get("/api/v1/students/r-x").status_code in (400, 404)


def test_only_an_admin_puts_a_student_on_the_roster(stack):
    body = {"student_id": "r-t", "name": "T", "class_id": "room-1"}
    for role in ("teacher", "room-1", "viewer"):
        assert error_code(client(stack, role).post("/api/v1/students", json=body), 403)
    assert stack.client.get("/api/v1/students/r-t").status_code == 404


# --- recording consent --------------------------------------------------------------------------


def test_who_may_record_consent(stack):
    roster(stack, "c-one", "One", "room-1")
    roster(stack, "c-two", "Two", "room-2")
    path = "/api/v1/students/{}/consent"
    assert error_code(put_json(client(stack, "viewer"), path.format("c-one"), CONSENT_JSON), 403)
    # The teacher of another class does not see the student at all.
    other = put_json(client(stack, "room-1"), path.format("c-two"), CONSENT_JSON)
    assert error_code(other, 404) == "student_not_found"
    assert stack.client.get("/api/v1/students/c-two").get_json()["consent"] is None
    mine = put_json(client(stack, "room-1"), path.format("c-one"), CONSENT_JSON)
    assert mine.status_code == 200, mine.get_json()
    consent = mine.get_json()["consent"]
    assert {k: consent[k] for k in ("given_by", "relationship", "given_on", "minor")} == {
        "given_by": "A. Parent",
        "relationship": "guardian",
        "given_on": "2026-09-01",
        "minor": True,
    }
    assert consent["recorded_by"] == "room-1" and consent["withdrawn_at"] is None
    assert mine.get_json()["face_data"] is False
    assert put_json(client(stack, "teacher"), path.format("c-two"), CONSENT_JSON).status_code == 200
    listed = client(stack, "room-1").get("/api/v1/students?class_id=room-1").get_json()
    assert {s["student_id"]: s["consent"]["recorded_by"] for s in listed["students"]} == {
        "c-one": "room-1"
    }
    audited = audit_actions(stack, "c-one")
    assert ("room-1", "record_consent") in audited
    # The giver's name stays out of the audit log.
    entries = stack.client.get("/api/v1/audit?limit=1000").get_json()["entries"]
    assert "A. Parent" not in json.dumps(entries)


@pytest.mark.parametrize(
    "changes, code",
    [
        ({"consent_relationship": "self"}, "minor_needs_parent"),  # a minor (the default)
        ({"consent_relationship": "self", "minor": True}, "minor_needs_parent"),
        ({"minor": "true"}, "invalid_consent"),  # JSON takes a boolean
        ({"consent_relationship": "friend"}, "invalid_consent"),
        ({"consent_given_by": None}, "invalid_consent"),
        ({"consent_relationship": None}, "invalid_consent"),
        ({"consent_given_on": None}, "invalid_consent"),
        ({"consent_given_on": "2026-13-01"}, "invalid_consent"),
        ({"consent_given_on": "1/9/2026"}, "invalid_consent"),
        ({"consent_given_on": "2999-01-01"}, "invalid_consent"),
        ({"consent_given_by": 3}, "invalid_consent"),
        ({"minor": "maybe"}, "invalid_consent"),
        ({"extra": "x"}, "invalid_request"),
    ],
)
def test_bad_consent_is_refused_and_nothing_recorded(stack, changes, code):
    roster(stack, "c-bad", "Bad", "room-1")
    body = {k: v for k, v in {**CONSENT_JSON, **changes}.items() if v is not None}
    resp = put_json(stack.client, "/api/v1/students/c-bad/consent", body)
    assert error_code(resp, 400) == code
    if code == "minor_needs_parent":
        assert "parent or guardian" in resp.get_json()["error"]["message"]
    assert stack.client.get("/api/v1/students/c-bad").get_json()["consent"] is None


def test_an_adult_student_consents_for_themselves(stack):
    roster(stack, "c-adult", "Adult", "room-1")
    body = {**CONSENT_JSON, "consent_relationship": "self", "minor": False}
    resp = put_json(stack.client, "/api/v1/students/c-adult/consent", body)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["consent"]["minor"] is False


def test_consent_for_an_unknown_or_hostile_id(stack):
    assert (
        error_code(put_json(stack.client, "/api/v1/students/nobody/consent", CONSENT_JSON), 404)
        == "student_not_found"
    )
    assert error_code(stack.client.delete("/api/v1/students/nobody/consent"), 404)
    for hostile in ("a%20b", "..", "%2e%2e", "x%0A"):
        resp = put_json(stack.client, f"/api/v1/students/{hostile}/consent", CONSENT_JSON)
        assert resp.status_code in (400, 404), resp.get_data(as_text=True)
        resp = stack.client.delete(f"/api/v1/students/{hostile}/consent")
        assert resp.status_code in (400, 404), resp.get_data(as_text=True)
    roster(stack, "c-form", "Form", "room-1")
    resp = stack.client.put(
        "/api/v1/students/c-form/consent", data=CONSENT_FORM, content_type="multipart/form-data"
    )
    assert error_code(resp, 415) == "unsupported_media_type"


# --- enrolling needs consent --------------------------------------------------------------------


def test_enrollment_without_consent_is_refused_and_stores_nothing(stack, faces_dir):
    before = stored(stack)
    resp = stack.client.post(
        "/api/v1/students",
        data={
            "student_id": "e-none",
            "name": "No Consent",
            "class_id": "e-1",
            "photos": files(faces_dir, JOLIE),
        },
        content_type="multipart/form-data",
    )
    assert error_code(resp, 409) == "consent_required"
    message = resp.get_json()["error"]["message"]
    assert "consent_given_by" in message and "/consent" in message
    # Half a consent, or a minor's own: 400, saying what is wrong.
    half = stack.client.post(
        "/api/v1/students",
        data={
            "student_id": "e-none",
            "name": "No Consent",
            "photos": files(faces_dir, JOLIE),
            "consent_given_by": "A. Parent",
        },
        content_type="multipart/form-data",
    )
    assert error_code(half, 400) == "invalid_consent"
    assert "consent_relationship" in half.get_json()["error"]["message"]
    own = stack.client.post(
        "/api/v1/students",
        data={
            "student_id": "e-none",
            "name": "No Consent",
            "photos": files(faces_dir, JOLIE),
            **CONSENT_FORM,
            "consent_relationship": "self",
        },
        content_type="multipart/form-data",
    )
    assert error_code(own, 400) == "minor_needs_parent"
    # More photos for a student on the roster without consent: refused too.
    roster(stack, "e-roster", "On Roster", "e-1")
    more = stack.client.post(
        "/api/v1/students/e-roster/photos",
        data={"photos": files(faces_dir, JOLIE)},
        content_type="multipart/form-data",
    )
    assert error_code(more, 409) == "consent_required"
    assert stored(stack) == before
    assert stack.client.get("/api/v1/students/e-none").status_code == 404
    assert stack.client.get("/api/v1/students/e-roster").get_json()["consent"] is None


def test_consent_recorded_first_lets_a_roster_student_be_enrolled(stack, faces_dir):
    roster(stack, "e-first", "Angelina Jolie", "e-2")
    resp = put_json(stack.client, "/api/v1/students/e-first/consent", CONSENT_JSON)
    assert resp.status_code == 200
    more = stack.client.post(
        "/api/v1/students/e-first/photos",
        data={"photos": files(faces_dir, JOLIE)},
        content_type="multipart/form-data",
    )
    assert more.status_code == 202, more.get_json()
    job = stack.wait_for_job(more.get_json()["job_id"])
    assert job["state"] == "succeeded", job
    student = stack.client.get("/api/v1/students/e-first").get_json()
    assert (student["embeddings"], student["face_data"]) == (2, True)
    assert student["consent"]["relationship"] == "guardian"


def test_consent_given_with_an_enrollment_that_cannot_be_queued_is_not_kept(stack, faces_dir):
    from attendance.web.app import create_app

    roster(stack, "e-dead", "Angelina Jolie", "e-3")
    # Nothing listens there: Redis is down for this app, which shares the stack's stores.
    settings = stack.settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/15"})
    down = tokens.as_admin(create_app(settings).test_client())
    resp = down.post(
        "/api/v1/students/e-dead/photos",
        data={"photos": files(faces_dir, JOLIE), **CONSENT_FORM},
        content_type="multipart/form-data",
    )
    assert error_code(resp, 503) == "service_unavailable"
    assert stack.client.get("/api/v1/students/e-dead").get_json()["consent"] is None


# --- withdrawing --------------------------------------------------------------------------------


def test_a_withdrawal_erases_face_data_and_keeps_the_student_and_attendance(stack, faces_dir):
    sid, room, day = "w-jolie", "w-room", "2026-11-09"
    job = enroll(stack, faces_dir, sid, room)
    assert job["state"] == "succeeded", job
    student = stack.client.get(f"/api/v1/students/{sid}").get_json()
    assert (student["embeddings"], student["face_data"]) == (2, True)
    assert student["consent"]["relationship"] == "parent"
    assert student["consent"]["recorded_by"] == "admin"
    seen = recognise(stack, faces_dir, room, day)
    assert seen["result"]["present"] == [sid]
    store = stack.root / "store"
    assert any(t.startswith("students/") for t in traces(store, sid))

    path = f"/api/v1/students/{sid}/consent"
    for role in ("teacher", "room-1", "viewer"):
        assert error_code(client(stack, role).delete(path), 403) == "forbidden"
    resp = stack.client.delete(path)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["student_id"] == sid and body["embeddings_removed"] == 2
    # Both photos filed under the student, and the uploads they came from.
    assert body["photos_removed"] >= 4
    assert body["consent"]["withdrawn_by"] == "admin" and body["consent"]["withdrawn_at"]

    # The student, their class and their attendance stay; their face is nowhere.
    student = stack.client.get(f"/api/v1/students/{sid}").get_json()
    assert (student["name"], student["class_ids"]) == ("Angelina Jolie", [room])
    assert (student["embeddings"], student["face_data"]) == (0, False)
    assert student["consent"]["withdrawn_at"] is not None
    marks = stack.client.get(f"/api/v1/attendance?class_id={room}&date={day}").get_json()
    assert [(r["student_id"], r["source"]) for r in marks["records"]] == [(sid, "face")]
    assert traces(store, sid) == []
    assert ("admin", "withdraw_consent") in audit_actions(stack, sid)

    # Again: 200, nothing more to remove.
    again = stack.client.delete(path)
    assert again.status_code == 200
    assert (again.get_json()["embeddings_removed"], again.get_json()["photos_removed"]) == (0, 0)
    assert again.get_json()["consent"]["withdrawn_at"] == body["consent"]["withdrawn_at"]
    # Not recognised any more, and not enrolled again without consent given again.
    later = recognise(stack, faces_dir, room, "2026-11-10")
    assert sid not in later["result"]["present"]
    more = stack.client.post(
        f"/api/v1/students/{sid}/photos",
        data={"photos": files(faces_dir, JOLIE)},
        content_type="multipart/form-data",
    )
    assert error_code(more, 409) == "consent_required"
    assert "withdrawn" in more.get_json()["error"]["message"]
    # Consent given again with the photos: enrolled again.
    resp = stack.client.post(
        f"/api/v1/students/{sid}/photos",
        data={"photos": files(faces_dir, JOLIE), **CONSENT_FORM},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 202, resp.get_json()
    assert stack.wait_for_job(resp.get_json()["job_id"])["state"] == "succeeded"
    student = stack.client.get(f"/api/v1/students/{sid}").get_json()
    assert student["face_data"] and student["consent"]["withdrawn_at"] is None


def test_a_withdrawal_for_a_student_without_face_data_changes_nothing_else(stack):
    roster(stack, "w-plain", "Plain", "w-room")
    resp = stack.client.delete("/api/v1/students/w-plain/consent")
    assert resp.status_code == 200
    assert resp.get_json()["consent"] is None
    assert (resp.get_json()["embeddings_removed"], resp.get_json()["photos_removed"]) == (0, 0)
    assert stack.client.get("/api/v1/students/w-plain").get_json()["name"] == "Plain"


# --- templates expire ---------------------------------------------------------------------------


def test_a_template_not_used_for_the_retention_period_expires(stack, faces_dir):
    for sid in ("x-idle", "x-seen"):
        assert enroll(stack, faces_dir, sid, "x-room")["state"] == "succeeded"
    blobs = open_blob_store(stack.settings.blob_store_url, stack.settings)
    records = open_records(stack.settings.records_url, stack.settings)
    now = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    # Recognised a day before "now": inside a two-day retention. The other never since.
    records.mark_present(
        AttendanceRecord(
            class_id="x-room",
            date=(now - dt.timedelta(days=1)).date(),
            student_id="x-seen",
            name="Angelina Jolie",
            first_seen_at=now - dt.timedelta(days=1),
            distance=0.3,
            job_id="a" * 32,
        )
    )
    # Within the period nothing expires.
    assert "x-idle" not in expire_templates(blobs, records, 5, now=now)
    expired = expire_templates(blobs, records, 2, now=now)
    assert "x-idle" in expired and "x-seen" not in expired
    idle = stack.client.get("/api/v1/students/x-idle").get_json()
    assert (idle["face_data"], idle["embeddings"]) == (False, 0)
    assert idle["consent"] is not None and idle["consent"]["withdrawn_at"] is None
    assert traces(stack.root / "store", "x-idle") == []
    assert stack.client.get("/api/v1/students/x-seen").get_json()["embeddings"] == 2
    assert (RETENTION_ACTOR, "expire_face_data") in audit_actions(stack, "x-idle")
    # Once expired, nothing is left to expire.
    assert "x-idle" not in expire_templates(blobs, records, 2, now=now)


def test_the_retention_task_expires_templates_with_the_setting(stack, faces_dir, monkeypatch):
    """The task beat runs, with a template retention of a second: every template not used
    since is erased (so this runs last in the module)."""
    from attendance.worker import retention

    assert enroll(stack, faces_dir, "x-task", "x-room")["state"] == "succeeded"
    settings = stack.settings.model_copy(update={"template_retention_days": 1 / 86400})
    monkeypatch.setattr(retention, "get_settings", lambda: settings)
    time.sleep(1.5)
    outcome = retention.purge_expired_task()
    assert outcome["templates_expired"] >= 1 and outcome["deleted"] == 0
    student = stack.client.get("/api/v1/students/x-task").get_json()
    assert (student["face_data"], student["embeddings"]) == (False, 0)
    assert student["consent"]["withdrawn_at"] is None
    audit = stack.client.get("/api/v1/audit?limit=1000").get_json()["entries"]
    assert any(
        (e["actor"], e["action"], e["target"]) == (RETENTION_ACTOR, "expire_face_data", "x-task")
        for e in audit
    )
