"""Attendance over a date range through the real app, real SQLite and real tokens: a student's
history and attendance rate, a class's absences, their exports, and who may read each."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from openpyxl import load_workbook

from attendance.domain.schemas import AttendanceRecord
from attendance.stores.records import open_records
from tests import redis_db, tokens
from tests.conftest import make_stack

pytestmark = [pytest.mark.redis, pytest.mark.integration]

APP_DB = 2  # the plain app queues nothing; shared with test_register_api.py, never at once
ROLES = {
    "admin": tokens.ADMIN,
    "teacher": tokens.TEACHER,
    "room-1": tokens.ROOM1_TEACHER,
    "viewer": tokens.VIEWER,
}
D = dt.date
AT = dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC)
RANGE = "from=2026-11-02&to=2026-11-06"


def mark(records, class_id, day, student_id, name, *, status="present", period=""):
    if status == "present":
        records.mark_present(
            AttendanceRecord(
                class_id=class_id,
                date=day,
                period=period,
                student_id=student_id,
                name=name,
                first_seen_at=AT,
                distance=0.3,
                job_id="f" * 32,
            )
        )
    else:
        records.set_mark(
            AttendanceRecord(
                class_id=class_id,
                date=day,
                period=period,
                student_id=student_id,
                name=name,
                first_seen_at=AT,
                status=status,
                source="manual",
                marked_by="teacher",
                marked_at=AT,
            )
        )


@pytest.fixture
def stack(tmp_path):
    """room-1 (Ann, Cara) held four sessions in the week of 2026-11-02: Monday (whole day),
    Monday period P2, Tuesday, and Thursday, signed off with nobody marked. Bob is in room-2."""
    s = make_stack(tmp_path, APP_DB)
    records = open_records(s.settings.records_url)
    records.upsert_student("ann", "Ann Example", "room-1")
    records.upsert_student("cara", "Cara Zed", "room-1")
    records.upsert_student("bob", "=HYPERLINK(1)", "room-2")
    mark(records, "room-1", D(2026, 11, 2), "ann", "Ann Example")
    mark(records, "room-1", D(2026, 11, 2), "cara", "Cara Zed", status="late")
    mark(records, "room-1", D(2026, 11, 2), "ann", "Ann Example", period="P2", status="excused")
    mark(records, "room-1", D(2026, 11, 3), "cara", "Cara Zed")
    records.finalize_register("room-1", D(2026, 11, 5), "", "teacher", AT)
    # Outside the range, and another class: neither counts in room-1's week.
    mark(records, "room-1", D(2026, 11, 9), "ann", "Ann Example")
    mark(records, "room-2", D(2026, 11, 3), "bob", "=HYPERLINK(1)")
    yield s
    redis_db.flush(redis_db.url_for(APP_DB))


def client(stack, role: str):
    c = stack.client.application.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {ROLES[role]}"
    return c


def error_code(resp, status: int) -> str:
    assert resp.status_code == status, resp.get_data(as_text=True)
    return resp.get_json()["error"]["code"]


def test_a_student_s_history_lists_every_session_of_their_class_with_their_status(stack):
    resp = client(stack, "viewer").get(f"/api/v1/students/ann/attendance?{RANGE}")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert (body["student_id"], body["name"], body["date_from"], body["date_to"]) == (
        "ann",
        "Ann Example",
        "2026-11-02",
        "2026-11-06",
    )
    assert [(r["date"], r["period"], r["status"], r["source"]) for r in body["rows"]] == [
        ("2026-11-02", "", "present", "face"),
        ("2026-11-02", "P2", "excused", "manual"),
        ("2026-11-03", "", "absent", None),
        ("2026-11-05", "", "absent", None),
    ]
    assert (body["sessions"], body["attended"], body["rate"]) == (4, 1, 0.25)
    assert body["counts"] == {"sessions": 4, "present": 1, "late": 0, "excused": 1, "absent": 2}


def test_late_counts_as_attended_in_the_rate(stack):
    body = client(stack, "admin").get(f"/api/v1/students/cara/attendance?{RANGE}").get_json()
    assert [r["status"] for r in body["rows"]] == ["late", "absent", "present", "absent"]
    assert (body["sessions"], body["attended"], body["rate"]) == (4, 2, 0.5)


def test_a_range_with_no_session_has_no_rate(stack):
    body = (
        client(stack, "admin")
        .get("/api/v1/students/ann/attendance?from=2026-10-01&to=2026-10-31")
        .get_json()
    )
    assert (body["sessions"], body["attended"], body["rate"], body["rows"]) == (0, 0, None, [])


def test_a_class_s_absences_put_the_most_absent_first_with_the_sessions_missed(stack):
    resp = client(stack, "room-1").get(f"/api/v1/classes/room-1/absences?{RANGE}")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert (body["class_id"], body["sessions"]) == ("room-1", 4)
    ann, cara = body["rows"]
    assert (ann["student_id"], ann["absent"], ann["excused"], ann["attended"]) == ("ann", 2, 1, 1)
    assert ann["absent_on"] == ["2026-11-03", "2026-11-05"]
    assert (cara["student_id"], cara["absent"], cara["late"], cara["attended"], cara["rate"]) == (
        "cara",
        2,
        1,
        2,
        0.5,
    )
    assert cara["absent_on"] == ["2026-11-02 P2", "2026-11-05"]


def test_the_absences_export_is_whole_and_spreadsheet_safe(stack):
    c = client(stack, "teacher")
    resp = c.get(f"/api/v1/classes/room-2/absences?{RANGE}&format=csv")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.mimetype == "text/csv"
    assert (
        'filename="absences-room-2-2026-11-02-to-2026-11-06.csv"'
        in resp.headers["Content-Disposition"]
    )
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows == [
        {
            "student_id": "bob",
            "name": "'=HYPERLINK(1)",
            "sessions": "1",
            "attended": "1",
            "absent": "0",
            "late": "0",
            "excused": "0",
            "rate": "1.0",
            "absent_on": "",
        }
    ]
    resp = c.get(f"/api/v1/classes/room-1/absences?{RANGE}&format=xlsx")
    assert resp.status_code == 200
    sheet = load_workbook(io.BytesIO(resp.get_data())).active
    values = list(sheet.values)
    assert values[0][:3] == ("student_id", "name", "sessions")
    assert values[1][0] == "ann" and values[1][-1] == "2026-11-03; 2026-11-05"
    actions = [e.action for e in open_records(stack.settings.records_url).list_audit()]
    assert actions.count("export_absences") == 2


def test_a_student_s_history_exports_as_csv(stack):
    resp = client(stack, "room-1").get(f"/api/v1/students/ann/attendance?{RANGE}&format=csv")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True).lstrip("\ufeff"))))
    assert [(r["date"], r["period"], r["status"]) for r in rows] == [
        ("2026-11-02", "", "present"),
        ("2026-11-02", "P2", "excused"),
        ("2026-11-03", "", "absent"),
        ("2026-11-05", "", "absent"),
    ]
    entry = open_records(stack.settings.records_url).list_audit()[0]
    assert (entry.action, entry.target, entry.actor) == (
        "export_student_attendance",
        "ann",
        "room-1",
    )


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/students/ann/attendance?{RANGE}&format=csv",
        f"/api/v1/classes/room-1/absences?{RANGE}&format=xlsx",
    ],
)
def test_a_viewer_reads_reports_but_does_not_export_them(stack, path):
    assert error_code(client(stack, "viewer").get(path), 403) == "forbidden"


def test_a_class_limited_teacher_sees_only_their_classes(stack):
    c = client(stack, "room-1")
    assert error_code(c.get(f"/api/v1/classes/room-2/absences?{RANGE}"), 403) == ("class_forbidden")
    assert error_code(c.get(f"/api/v1/students/bob/attendance?{RANGE}"), 403) == ("class_forbidden")


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/v1/students/nobody/attendance", 404, "student_not_found"),
        ("/api/v1/classes/empty-room/absences", 404, "unknown_class"),
        ("/api/v1/students/bad%24id/attendance", 400, "invalid_student_id"),
        ("/api/v1/classes/%3Cscript%3E/absences", 400, "invalid_class_id"),
        ("/api/v1/students/ann/attendance?from=2026-11-06&to=2026-11-02", 400, "invalid_range"),
        ("/api/v1/classes/room-1/absences?from=2025-01-01&to=2026-11-02", 400, "invalid_range"),
        ("/api/v1/classes/room-1/absences?from=2026-13-01", 400, "invalid_date"),
        ("/api/v1/classes/room-1/absences?format=pdf", 400, "invalid_format"),
    ],
)
def test_bad_report_requests_say_what_was_wrong(stack, path, status, code):
    assert error_code(client(stack, "admin").get(path), status) == code


def test_without_a_range_a_report_covers_the_last_30_days(stack):
    body = client(stack, "admin").get("/api/v1/classes/room-1/absences").get_json()
    today = dt.date.today()
    assert body["date_to"] == today.isoformat()
    assert body["date_from"] == (today - dt.timedelta(days=29)).isoformat()
