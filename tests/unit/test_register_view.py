"""The register on screen, its pure parts: rows absent first, plain words for what marked a
student and how sure a face match is, and the calls a click makes (which request, what body, and
what the control shows when the API refuses)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import requests
import streamlit as st

from attendance.domain.schemas import (
    Box,
    FaceMatch,
    JobView,
    ModelInfo,
    PhotoResult,
    RecognitionResult,
    Register,
    RegisterLock,
    RegisterRow,
    Student,
)
from attendance.frontend import register
from attendance.frontend.api_client import ApiClient, ApiError
from attendance.frontend.views.attendance import period_options
from attendance.frontend.views.take_attendance import (
    face_words,
    model_updated_since,
    photo_alt,
    photo_labels,
    settled_faces,
    uncounted_words,
    unknown_faces,
)

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


def test_a_photo_without_a_file_name_is_called_by_its_place_in_the_upload():
    result = {"photos": [{"filename": "", "faces": [{"outcome": "unknown"}]}]}
    assert [f for _, f, _ in unknown_faces(JOB, result)] == ["Photo 1"]
    two_jobs = [
        (JOB, RecognitionResult(class_id="c", date=DAY, photos=[photo("a.jpg")], **EMPTY)),
        (
            "b" * 32,
            RecognitionResult(class_id="c", date=DAY, photos=[photo(""), photo("")], **EMPTY),
        ),
    ]
    labels = photo_labels(two_jobs)
    assert labels == {(JOB, 0): "a.jpg", ("b" * 32, 0): "Photo 2", ("b" * 32, 1): "Photo 3"}
    result = {"photos": [{"filename": "", "faces": [{"outcome": "rejected"}]}]}
    assert [f for f, _, _ in settled_faces(result, "b" * 32, labels)] == ["Photo 2"]


EMPTY = {"present": [], "unknown_faces": 0, "model_version": 1}


def photo(filename: str, *faces: FaceMatch) -> PhotoResult:
    return PhotoResult(filename=filename, faces=list(faces))


def face(outcome: str, distance: float | None = None, **fields) -> FaceMatch:
    return FaceMatch(
        box=Box(x=0, y=0, w=10, h=10),
        student_id=fields.pop(
            "student_id", "ann" if outcome in ("recognised", "assigned") else None
        ),
        name=fields.pop("name", "Ann Lee" if outcome in ("recognised", "assigned") else None),
        distance=distance,
        outcome=outcome,
        **fields,
    )


@pytest.mark.parametrize(
    ("match", "words"),
    [
        (face("recognised", 0.2), "Ann Lee (strong match)"),
        (face("recognised", 0.42), "Ann Lee (borderline match — check)"),
        (face("assigned", settled_by="ms-k"), "Ann Lee (said by ms-k)"),
        (face("rejected", settled_by="ms-k"), "not a student of this class (said by ms-k)"),
        (face("unknown", 0.9), "no match: nobody of the class (say who it is above)"),
        (face("unidentifiable", reason="too small to recognise"), "too small to recognise"),
    ],
)
def test_each_face_of_a_photo_in_plain_words(match, words):
    # The register's grades, from the distance and the threshold the API reports.
    assert face_words(match, 0.45) == words
    for jargon in ("distance", "cosine", "embedding", "0.2", "0.42"):
        assert jargon not in words


def test_without_the_threshold_a_match_is_not_graded():
    assert face_words(face("recognised", 0.2), None) == "Ann Lee"
    assert register.face_quality(0.2, None) is None
    assert register.face_quality(None, 0.45) is None
    assert register.face_quality(0.36, 0.45) == "strong"
    assert register.face_quality(0.37, 0.45) == "borderline"


def test_an_annotated_photo_is_described_for_screen_readers():
    shown = photo_alt(
        "couple.jpg",
        [face("recognised", 0.2), face("unknown"), face("unidentifiable"), face("unidentifiable")],
    )
    assert shown == (
        "Class photo couple.jpg, a box around each face found; named: Ann Lee; 1 not "
        "recognised; 2 too small or unclear to tell"
    )
    assert photo_alt("Photo 2", []) == "Class photo Photo 2: no face found"


def test_the_register_summary_lists_who_is_absent_first_each_status_with_its_word():
    rows = [row("p", "Pat", "present"), row("a", "*Al*"), row("b", "Bo"), row("l", "Lu", "late")]
    lines = register.summary_lines(rows)
    assert lines == [
        "**:material/cancel: Absent (2):** \\*Al\\*, Bo",
        "**:material/schedule: Late (1):** Lu",
        "**:material/check_circle: Present (1):** Pat",
    ]
    assert register.summary_lines([]) == []


def test_the_face_model_was_updated_since_the_photos_were_read():
    model = ModelInfo(
        version=3,
        model_name="m",
        detector="d",
        metric="x",
        threshold=0.45,
        students=1,
        embeddings=2,
        pipeline="p",
    )

    def read_with(version: int) -> list[tuple[str, RecognitionResult]]:
        result = RecognitionResult(
            class_id="c", date=DAY, photos=[], **{**EMPTY, "model_version": version}
        )
        return [(JOB, result)]

    assert model_updated_since(read_with(2), model)
    assert not model_updated_since(read_with(3), model)
    assert not model_updated_since(read_with(2), None)


def test_the_faces_not_listed_under_a_photo_are_counted_in_words():
    assert uncounted_words(0, 0) == []
    assert uncounted_words(1, 3) == [
        ":material/help: 1 face with no match (red boxes): say who it is above.",
        ":material/blur_on: 3 faces too small or unclear to tell who they are (amber boxes, "
        "without a name).",
    ]
