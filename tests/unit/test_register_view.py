"""The register on screen, its pure parts: rows absent first, plain words for what marked a
student and how sure a face match is, and the calls a click makes (which request, what body, and
what the control shows when the API refuses)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import requests
import streamlit as st

from attendance.domain.schemas import JobView, Register, RegisterLock, RegisterRow, Student
from attendance.frontend import register
from attendance.frontend.api_client import ApiClient, ApiError
from attendance.frontend.views.attendance import period_options
from attendance.frontend.views.take_attendance import settled_faces, unknown_faces

DAY = dt.date(2026, 11, 9)
AT = dt.datetime(2026, 11, 9, 8, 5, tzinfo=dt.UTC)
JOB = "a" * 32


def row(student_id: str, name: str, status: str = "absent", **fields) -> RegisterRow:
    return RegisterRow(student_id=student_id, name=name, status=status, **fields)


class Recorder:
    """A requests.Session as far as ApiClient uses one: answers every request with ``status``
    and ``body`` and remembers what was asked."""

    def __init__(self, status: int, body: dict):
        self.status, self.body = status, body
        self.calls: list[tuple[str, str, dict]] = []

    def request(self, method, url, **kwargs):
        self.calls.append((method, url, kwargs))
        resp = requests.Response()
        resp.status_code = self.status
        resp._content = json.dumps(self.body).encode()
        resp.headers["Content-Type"] = "application/json"
        return resp


@pytest.fixture(autouse=True)
def clean_session_state():
    for key in list(st.session_state):
        del st.session_state[key]
    yield


def test_absent_students_come_first_then_excused_late_present_each_by_name():
    rows = [
        row("p2", "zoe", "present"),
        row("a2", "Bea"),
        row("l1", "Liam", "late"),
        row("p1", "Ann", "present"),
        row("e1", "Eve", "excused"),
        row("a1", "adam"),
    ]
    assert [r.student_id for r in register.ordered(rows)] == ["a1", "a2", "e1", "l1", "p1", "p2"]


def test_match_quality_in_plain_words():
    assert register.quality_words("strong") == "strong match"
    assert register.quality_words("borderline") == "borderline match — check"
    assert register.quality_words(None) is None


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({}, "nothing marked them"),
        (
            {"status": "present", "source": "face", "match_quality": "borderline"},
            "seen in a class photo (borderline match — check)",
        ),
        (
            {"status": "present", "source": "face", "match_quality": "strong", "marked_at": AT},
            "seen in a class photo (strong match) at 08:05 UTC",
        ),
        (
            {"status": "present", "source": "face", "captured_at": AT},
            "seen in a class photo, taken at 08:05 UTC",
        ),
        (
            {"status": "late", "source": "manual", "marked_by": "ms-k", "marked_at": AT},
            "marked by ms-k at 08:05 UTC",
        ),
        (
            {
                "status": "present",
                "source": "manual",
                "marked_by": "ms-k",
                "marked_at": AT + dt.timedelta(days=1),
                "job_id": JOB,
                "photo": 0,
                "face": 1,
            },
            "marked by ms-k, from a face in a class photo at 2026-11-10 08:05 UTC",
        ),
    ],
)
def test_what_marked_a_student_in_plain_words(fields, words):
    shown = register.how_marked(row("s", "S", **{"status": "absent", **fields}), DAY)
    assert shown == words
    for jargon in ("distance", "cosine", "embedding"):
        assert jargon not in shown


def test_status_is_a_word_with_an_icon_not_a_colour_alone():
    for status in register.STATUSES:
        words = register.status_words(status)
        assert register.STATUS_LABEL[status] in words and words.startswith(":material/")
    assert register.counts_words([row("a", "A"), row("b", "B", "late")]) == (
        "0 present · 1 late · 0 excused · 1 absent"
    )


def test_the_face_a_row_rests_on():
    assert register.face_of(row("s", "S")) is None
    assert register.face_of(row("s", "S", "present", source="face", job_id=JOB)) is None
    assert register.face_of(
        row("s", "S", "present", source="face", job_id=JOB, photo=2, face=0)
    ) == (JOB, 2, 0)


def test_periods():
    assert register.period_words("") == "whole day"
    assert register.period_words("P3 maths") == "period P3 maths"
    assert register.period_problem("") is None and register.period_problem("P3 maths") is None
    assert "short label" in (register.period_problem("-x") or "")
    assert "short label" in (register.period_problem("x" * 33) or "")
    records = []  # no mark that day: the whole day, and the period last taken
    assert period_options(records, "P2") == ["", "P2"]


def test_signed_off_in_plain_words_and_the_export_name():
    lock = RegisterLock(class_id="c", date=DAY, period="1", finalized_by="ms-k", finalized_at=AT)
    assert register.finalized_words(lock).startswith(
        "Signed off by ms-k on 2026-11-09 08:05 UTC. Only an administrator can change it now"
    )
    assert register.export_name("room 1", DAY, "P3 maths", "csv") == (
        "register-room_1-2026-11-09-P3_maths.csv"
    )
    assert register.export_name("r", DAY, "", "xlsx") == "register-r-2026-11-09.xlsx"


def test_a_status_click_puts_the_mark_and_says_what_changed():
    after = row("s.1", "Sam", "late", source="manual", marked_by="admin", marked_at=AT)
    session = Recorder(200, {"before": None, "after": after.model_dump(mode="json")})
    api = ApiClient("http://api", token="t", session=session)
    reg = Register(class_id="room-1", date=DAY, period="P1", rows=[row("s.1", "Sam")])
    assert register.mark(api, reg, reg.rows[0], "late", None, "w") is True
    [(method, url, kwargs)] = session.calls
    assert (method, url) == ("PUT", "http://api/api/v1/attendance/room-1/2026-11-09/s.1")
    assert kwargs["json"] == {"status": "late", "period": "P1"}
    kind, text, error = st.session_state[register.FEEDBACK]
    assert (kind, text, error) == ("success", "Sam: late (was absent)", None)


def test_clicking_the_status_a_student_has_calls_nothing():
    session = Recorder(500, {})
    api = ApiClient("http://api", session=session)
    reg = Register(class_id="c", date=DAY, rows=[row("s", "Sam", "present")])
    assert register.mark(api, reg, reg.rows[0], "present", None, "w") is False
    assert session.calls == [] and st.session_state["w"] == "present"


def test_a_signed_off_register_puts_the_control_back_and_says_why():
    body = {"error": {"code": "register_finalized", "message": "the register ... is signed off"}}
    api = ApiClient("http://api", session=Recorder(409, body))
    reg = Register(class_id="c", date=DAY, rows=[row("s", "Sam")])
    st.session_state["w"] = "excused"
    assert register.mark(api, reg, reg.rows[0], "excused", "ill", "w") is False
    assert st.session_state["w"] == "absent"  # what the register still says
    kind, text, error = st.session_state[register.FEEDBACK]
    assert kind == "error" and text == "Could not mark Sam Excused"
    assert isinstance(error, ApiError) and error.register_finalized


def test_assigning_a_face_posts_who_it_is_and_follows_the_learning():
    session = Recorder(200, {"row": None, "face": {}, "learn_job_id": "b" * 32})
    api = ApiClient("http://api", session=session)
    ann = Student(student_id="ann", name="Ann")
    assert register.assign(api, (JOB, 0, 2), ann, True) is True
    [(method, url, kwargs)] = session.calls
    assert (method, url) == ("POST", f"http://api/api/v1/jobs/{JOB}/photos/0/faces/2/assign")
    assert kwargs["json"] == {"student_id": "ann", "learn": True}
    assert st.session_state[register.LEARNING] == [{"job_id": "b" * 32, "name": "Ann"}]
    register.assign(api, (JOB, 0, 2), None, False, was="Ann")
    assert session.calls[-1][2]["json"] == {"student_id": None, "learn": False}
    assert st.session_state[register.FEEDBACK][1] == (
        "Face set aside: not a student of this class; Ann is no longer marked by it"
    )


def job(state: str, result=None, error=None) -> JobView:
    return JobView.model_validate(
        {
            "job_id": "b" * 32,
            "kind": "enrollment",
            "state": state,
            "progress": {"done": 0, "total": 1},
            "result": result,
            "error": error,
            "created_at": AT,
            "updated_at": AT,
        }
    )


def test_what_became_of_learning_a_face():
    assert register.learning_words("Ann", job("running"))[0] == "info"
    assert register.learning_words("Ann", job("succeeded", {"accepted_photos": 1})) == (
        "success",
        "The face was added to Ann's photos: they are recognised by it next time.",
    )
    kind, text = register.learning_words(
        "Ann", job("failed", error={"code": "no_usable_photo", "message": "unlike the others"})
    )
    assert (kind, text) == ("warning", "The face was not added to Ann's photos: unlike the others")


def test_unknown_and_settled_faces_of_a_result():
    result = {
        "photos": [
            {
                "filename": "a.jpg",
                "faces": [
                    {"outcome": "recognised"},
                    {"outcome": "unknown"},
                    {"outcome": "assigned", "name": "Ann", "settled_by": "ms-k"},
                ],
            },
            {"filename": "b.jpg", "faces": [{"outcome": "rejected"}, {"outcome": "unknown"}]},
        ]
    }
    assert [(w, f) for w, f, _ in unknown_faces(JOB, result)] == [
        ((JOB, 0, 1), "a.jpg"),
        ((JOB, 1, 1), "b.jpg"),
    ]
    assert [(f, n) for f, n, _ in settled_faces(result)] == [("a.jpg", 3), ("b.jpg", 1)]
