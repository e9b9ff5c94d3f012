"""Each page of the Streamlit app, run by Streamlit's AppTest against a real API and worker.

The API is the real Flask app served by werkzeug on a free port, over the ``stack`` fixture's
Redis database and stores, with one real Celery worker; the app finds it through
ATTENDANCE_API_URL, as it does in production, and logs in with ATTENDANCE_API_TOKEN (the admin
token of tests/tokens.py unless a test says otherwise) or through the sidebar's login form.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from pathlib import Path

import pytest
import requests
from PIL import Image
from streamlit.proto.TextInput_pb2 import TextInput as TextInputProto
from streamlit.testing.v1 import AppTest

from attendance.frontend.api_client import LOGIN_HINT, ApiClient
from attendance.frontend.ui import WORD_JOINER, plain
from tests import tokens
from tests.conftest import REPO
from tests.emulators import free_port

pytestmark = [
    pytest.mark.redis,
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.model,
    pytest.mark.timeout(600),
]

APP = REPO / "src" / "attendance" / "frontend" / "app.py"
JOLIE_PHOTOS = ["img2.jpg", "img4.jpg", "img5.jpg", "img6.jpg"]
DAY = dt.date(2026, 11, 2)
JOB_RUN_TIMEOUT = 240  # a page run that submits a job and follows it to the end
LOGIN_BUTTON = "FormSubmitter:login-Log in with the token"
TOKEN_PAGES = (
    "views/take_attendance.py",
    "views/attendance.py",
    "views/enroll.py",
    "views/students.py",
)


def app_at(
    monkeypatch, url: str, page: str | None = None, *, token: str | None = tokens.ADMIN
) -> AppTest:
    """The app at ``url``, started with ATTENDANCE_API_TOKEN=``token`` (None: unset)."""
    monkeypatch.setenv("ATTENDANCE_API_URL", url)
    if token is None:
        monkeypatch.delenv("ATTENDANCE_API_TOKEN", raising=False)
    else:
        monkeypatch.setenv("ATTENDANCE_API_TOKEN", token)
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def unescape(markdown: str) -> str:
    """What a person reads: the app escapes Markdown specials in names and messages
    (attendance.frontend.ui.plain), so ``a\\_b`` in the source shows as ``a_b``."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown).replace(WORD_JOINER, "")


def texts(elements) -> list[str]:
    return [unescape(str(e.value)) for e in elements]


def enroll_form(at: AppTest, name: str):
    """A widget of the one-student form, in its current generation (every submission starts
    a new, empty one)."""
    generation = (
        at.session_state["enroll.form_generation"]
        if "enroll.form_generation" in at.session_state
        else 0
    )
    key = f"enroll.{name}.{generation}"
    kind = {
        "photos": "file_uploader",
        "submit": "button",
        "consent_relationship": "selectbox",
        "consent_given_on": "date_input",
        "minor": "checkbox",
        "form_held": "checkbox",
        "class_choice": "selectbox",
    }.get(name, "text_input")
    return getattr(at, kind)(key=key)


CONSENT_DAY = dt.date(2026, 9, 1)


def give_consent(at: AppTest, given_by: str = "A. Parent") -> None:
    """Fill in the one-student form's consent: a parent's, for a minor, with the form held."""
    enroll_form(at, "consent_given_by").input(given_by)
    enroll_form(at, "consent_given_on").set_value(CONSENT_DAY)
    enroll_form(at, "form_held").check()


def jpeg(path: Path) -> tuple[str, bytes, str]:
    return path.name, path.read_bytes(), "image/jpeg"


def blank_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (120, 140, 160)).save(out, format="PNG")
    return out.getvalue()


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


# The face model's inner workings, which the pages leave to *Technical details*.
JARGON = ("gallery version", "embedding", "cosine", "facenet", "opencv", "distance", "worker")


TEXT_KINDS = ("title", "subheader", "markdown", "caption", "info", "success", "warning")


def outside_technical_details(at: AppTest) -> str:
    """The main area's text, leaving out what the *Technical details* expanders hold."""
    inside = {
        id(element)
        for expander in at.main.expander
        if expander.label == "Technical details"
        for kind in TEXT_KINDS
        for element in getattr(expander, kind)
    }
    kept = [
        unescape(str(element.value))
        for kind in TEXT_KINDS
        for element in getattr(at.main, kind)
        if id(element) not in inside
    ]
    return "\n".join(kept + [m.label for m in at.main.metric])


def technical_details(at: AppTest) -> dict[str, str]:
    """The students page's *Technical details*: "Name: value" lines, by name."""
    [expander] = [e for e in at.main.expander if e.label == "Technical details"]
    lines = [unescape(m.value).removeprefix("- ") for m in expander.markdown]
    return dict(line.split(": ", 1) for line in lines)


def assert_no_jargon(at: AppTest) -> None:
    text = outside_technical_details(at).lower()
    assert not [w for w in JARGON if w in text], text


def images_without_alt(at: AppTest) -> list[str]:
    return [img.url for i in at.main.image for img in i.proto.imgs if not img.alt.strip()]


def shown_text(at: AppTest) -> str:
    """Everything the run put on screen as text, sidebar included."""
    kinds = ("title", "markdown", "caption", "info", "success", "warning", "error")
    return "\n".join(unescape(str(e.value)) for kind in kinds for e in getattr(at, kind))


def log_in(at: AppTest, token: str) -> AppTest:
    """Type ``token`` into the sidebar's password box and press *Log in*."""
    box = at.sidebar.text_input(key="auth.token_input")
    assert box.proto.type == TextInputProto.PASSWORD
    box.input(token)
    at.sidebar.button(key=LOGIN_BUTTON).click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def asks_to_log_in(at: AppTest) -> bool:
    return any(LOGIN_HINT in t for t in texts(at.main.info))


def test_every_page_says_when_the_api_is_down(monkeypatch):
    url = f"http://127.0.0.1:{free_port()}"
    at = app_at(monkeypatch, url)
    message = f"The API at {url} is not reachable"
    assert any(message in t for t in texts(at.error)), texts(at.error)
    for page in (
        "views/enroll.py",
        "views/attendance.py",
        "views/students.py",
        "views/monitoring.py",
    ):
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert any(message in t for t in texts(at.error)), (page, texts(at.error))


def test_model_page_before_anyone_is_enrolled(monkeypatch, api_url, stack):
    at = app_at(monkeypatch, api_url, "views/students.py")
    shown = metrics(at)
    assert (shown["Students it knows"], shown["Face photos learned"]) == ("0", "0")
    assert any("the face model knows no one" in t for t in texts(at.info))
    assert "The face model has not learned anyone yet." in texts(at.main.markdown)
    # What an administrator may need, behind an expander; plain words everywhere else.
    details = technical_details(at)
    assert details["Gallery version"] == "0" and details["Model"] == "Facenet"
    assert details["Match threshold"].startswith(f"{stack.settings.match_threshold:.2f} ")
    assert details["Detector"] == stack.settings.detector
    assert_no_jargon(at)


def test_store_settings_the_app_never_opens_do_not_stop_it(monkeypatch, api_url):
    # Store URLs the API would refuse: the app talks to the API only, so they are not its concern.
    monkeypatch.setenv("ATTENDANCE_RECORDS_URL", "nonsense://x")
    monkeypatch.setenv("ATTENDANCE_BLOB_STORE_URL", "nonsense://y")
    at = app_at(monkeypatch, api_url, "views/students.py")
    assert not at.error, texts(at.error)
    assert at.title[0].value == "Students and model"
    assert technical_details(at)["Model"] == "Facenet"
    assert "Students it knows" in metrics(at)
    assert any("Logged in" in t for t in texts(at.sidebar.success))


# --- logging in ----------------------------------------------------------------------------------


def test_without_a_token_the_pages_ask_to_log_in(monkeypatch, api_url):
    at = app_at(monkeypatch, api_url, token=None)
    assert asks_to_log_in(at), texts(at.main.info)
    assert at.session_state["auth.token"] is None
    # The sidebar has the login form, and no "logged in".
    assert at.sidebar.text_input(key="auth.token_input").value == ""
    assert not any("Logged in" in t for t in texts(at.sidebar.success))
    for page in TOKEN_PAGES:
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert asks_to_log_in(at), (page, texts(at.main.info))
        assert not at.main.error and not at.dataframe and not at.metric, page
    # Monitoring needs no token: /readyz is open. Whether every part works depends on whether
    # this module's worker has started yet; either way the page says it, not an API error.
    at.switch_page("views/monitoring.py").run()
    assert not asks_to_log_in(at) and at.title[0].value == "Monitoring"
    said = texts(at.main.success) + texts(at.main.warning) + texts(at.main.error)
    summaries = ("Everything is working", "Everything asked is working", "Not everything is")
    assert any(t.startswith(summaries) for t in said), said
    assert not any(t.startswith("The API does not answer") for t in said), said


def test_a_wrong_token_is_not_valid(monkeypatch, api_url):
    at = log_in(app_at(monkeypatch, api_url, token=None), "not-a-token")
    message = (
        "That token is not valid: the API refused it. Check it, or ask an administrator "
        "for one, and log in again."
    )
    assert texts(at.main.error) == [message]
    assert texts(at.sidebar.error) == [message]
    assert at.sidebar.text_input(key="auth.token_input").value == ""
    assert asks_to_log_in(at)
    assert at.session_state["auth.token"] is None
    assert at.session_state["auth.token_input"] == ""  # the box is emptied
    assert "not-a-token" not in shown_text(at)


def test_a_wrong_configured_token_is_not_valid(monkeypatch, api_url):
    at = app_at(monkeypatch, api_url, token="not-a-token")
    message = "The token in ATTENDANCE_API_TOKEN is not valid: the API refused it."
    assert any(t.startswith(message) for t in texts(at.sidebar.error)), texts(at.sidebar.error)
    assert any(t.startswith(message) for t in texts(at.main.error)), texts(at.main.error)
    assert asks_to_log_in(at)
    assert at.sidebar.text_input(key="auth.token_input").value == ""
    assert "not-a-token" not in shown_text(at)


def test_log_in_through_the_sidebar_with_the_admin_token(monkeypatch, api_url):
    at = log_in(app_at(monkeypatch, api_url, token=None), tokens.ADMIN)
    assert not asks_to_log_in(at) and not at.main.error, (texts(at.main.info), texts(at.main.error))
    assert at.title[0].value == "Take attendance"
    assert at.session_state["auth.token"] == tokens.ADMIN
    assert at.session_state["auth.role"] == "admin"
    assert at.session_state["auth.token_input"] == ""
    # The form gave way to who is logged in; the token itself is nowhere on screen.
    assert texts(at.sidebar.success)[-1] == "Logged in as **admin** (admin)"
    assert "with an API token" in texts(at.sidebar.caption)
    assert not [t for t in at.text_input if t.key == "auth.token_input"]
    assert tokens.ADMIN not in shown_text(at)
    at.switch_page("views/students.py").run()
    assert metrics(at)["Students it knows"] == "0"
    assert texts(at.sidebar.success)[-1] == "Logged in as **admin** (admin)"


def test_the_sidebar_says_who_is_logged_in_and_logs_out(monkeypatch, api_url):
    at = app_at(monkeypatch, api_url)
    assert texts(at.sidebar.success)[-1] == "Logged in as **admin** (admin)"
    assert "with the token from ATTENDANCE_API_TOKEN" in texts(at.sidebar.caption)
    assert tokens.ADMIN not in shown_text(at)
    at.sidebar.button(key="auth.logout").click()
    at.run()
    assert asks_to_log_in(at)
    assert at.session_state["auth.token"] is None
    assert at.sidebar.text_input(key="auth.token_input").value == ""
    # Logged out stays logged out: ATTENDANCE_API_TOKEN is not taken again.
    at.switch_page("views/students.py").run()
    assert asks_to_log_in(at)
    assert not any("Logged in" in t for t in texts(at.sidebar.success))


def test_a_viewer_is_told_it_may_not_enroll(monkeypatch, api_url):
    at = app_at(monkeypatch, api_url, token=tokens.VIEWER)
    assert texts(at.sidebar.success)[-1] == (
        "Logged in as **viewer** (viewer: may see attendance only)"
    )
    at.switch_page("views/enroll.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert texts(at.main.error) == [
        "Could not load the students: Your token's role may not do this: the viewer role may "
        "not do this; it needs teacher. Log in with another token in the sidebar if you need "
        "to."
    ]
    assert "error code: `forbidden`, HTTP 403" in texts(at.main.caption)
    assert not [t for t in at.text_input if t.key == "enroll.student_id"], "no enrollment form"


def test_a_teacher_may_not_enroll(monkeypatch, api_url, faces_dir):
    at = app_at(monkeypatch, api_url, "views/enroll.py", token=tokens.TEACHER)
    enroll_form(at, "student_id").input("nobody")
    enroll_form(at, "name").input("No Body")
    enroll_form(at, "class_choice").select("No class")
    enroll_form(at, "photos").set_value([jpeg(faces_dir / "img2.jpg")])
    give_consent(at)
    enroll_form(at, "submit").click()
    at.run()
    assert texts(at.main.error) == [
        "No Body (nobody): not submitted: Your token's role may not do this: the teacher role "
        "may not do this; it needs admin. Log in with another token in the sidebar if you "
        "need to."
    ]


def test_enroll_one_student_through_the_page(monkeypatch, api_url, faces_dir):
    at = app_at(monkeypatch, api_url, "views/enroll.py")
    enroll_form(at, "student_id").input("jolie")
    enroll_form(at, "name").input("Angelina Jolie")
    # No class exists yet: the picker offers only a new one, or none.
    picker = enroll_form(at, "class_choice")
    assert picker.options == ["New class…", "No class (on no register until one is added)"]
    assert picker.value is None
    picker.select("New class…")
    at.run()
    enroll_form(at, "new_class").input("room-1")
    enroll_form(at, "photos").set_value([jpeg(faces_dir / p) for p in JOLIE_PHOTOS])
    at.run()
    # Before submitting, the photos to be sent are shown small, with their file names.
    assert "4 photos to be sent:" in texts(at.caption)
    [preview] = at.image
    assert [unescape(c) for c in preview.captions] == JOLIE_PHOTOS
    # Not without consent: who gave it, and that a signed form is held.
    enroll_form(at, "submit").click()
    at.run()
    assert texts(at.main.warning) == [
        "Say who gave the consent to hold the student's face data."
    ], texts(at.main.warning)
    enroll_form(at, "consent_given_by").input("A. Parent")
    enroll_form(at, "consent_relationship").select("self")  # the student is a minor
    enroll_form(at, "submit").click()
    at.run()
    assert texts(at.main.warning) == ["A minor's consent must be given by a parent or guardian."]
    enroll_form(at, "consent_relationship").select("parent")
    enroll_form(at, "submit").click()
    at.run()
    assert texts(at.main.warning) == [
        "Tick that a signed consent form is held before enrolling the student."
    ]
    # Nothing was sent, and the form keeps what was typed.
    assert enroll_form(at, "student_id").value == "jolie"
    give_consent(at)
    enroll_form(at, "submit").click()
    at.run(timeout=JOB_RUN_TIMEOUT)
    assert not at.exception, [e.value for e in at.exception]
    # The form came back empty (new widgets): nothing of this student goes to the next one.
    assert at.session_state["enroll.form_generation"] == 1
    assert [enroll_form(at, f).value for f in ("student_id", "name")] == ["", ""]
    # The class just made is the next student's, until another is chosen.
    assert enroll_form(at, "class_choice").value == "room-1"
    assert enroll_form(at, "photos").value in (None, [])
    assert not at.image
    assert texts(at.main.success) == [
        "Angelina Jolie (jolie) is enrolled in room-1: 4 of 4 photos could be used, and the "
        "face model was updated."
    ], texts(at.error)
    assert not at.main.warning, texts(at.main.warning)
    table = at.dataframe[0].value
    assert table.loc[0, "student_id"] == "jolie" and table.loc[0, "accepted"] == 4
    # The progress bar followed the job to its end.
    assert [p.value for p in at.get("progress")] == [100]

    at.switch_page("views/students.py").run()
    shown = metrics(at)
    assert (shown["Students it knows"], shown["Face photos learned"]) == ("1", "4")
    assert technical_details(at)["Gallery version"] == "1"
    assert any(t.startswith("The face model was updated on ") for t in texts(at.main.markdown))
    assert_no_jargon(at)
    students = at.dataframe[0].value
    assert students.to_dict("records") == [
        {
            "student_id": "jolie",
            "name": "Angelina Jolie",
            "classes": "room-1",
            "face photos learned": 4,
            "consent": "parent, 2026-09-01",
            "face data": "held",
        }
    ]


def test_enroll_form_errors_are_the_apis_messages(monkeypatch, api_url, faces_dir):
    at = app_at(monkeypatch, api_url, "views/enroll.py")
    enroll_form(at, "student_id").input("bad id!")
    enroll_form(at, "class_choice").select("room-1")
    enroll_form(at, "photos").set_value([jpeg(faces_dir / "img2.jpg")])
    give_consent(at)
    enroll_form(at, "submit").click()
    at.run()
    errors = texts(at.main.error)
    assert errors == [
        "bad id!: not submitted: student_id must be 1-64 characters of "
        "letters, digits, '.', '_' or '-', starting with a letter or a digit"
    ], errors


def test_a_hostile_name_is_shown_literally(monkeypatch, api_url):
    name = "**bold** [link](http://x) <b>x</b> :red[red]"
    at = app_at(monkeypatch, api_url, "views/enroll.py")
    enroll_form(at, "student_id").input("hostile")
    enroll_form(at, "name").input(name)
    enroll_form(at, "class_choice").select("room-1")
    enroll_form(at, "photos").set_value([("*wall*_[1].png", blank_png(), "image/png")])
    at.run()
    # The thumbnail's caption is the file name, escaped.
    assert at.image[0].captions == [plain("*wall*_[1].png")]
    give_consent(at)
    enroll_form(at, "submit").click()
    at.run(timeout=JOB_RUN_TIMEOUT)
    assert not at.exception, [e.value for e in at.exception]
    [error] = at.main.error
    # The Markdown source escapes every special, so Streamlit shows the name as it was typed.
    assert error.value.startswith(plain(f"{name} (hostile)") + ": failed: "), error.value
    assert "*wall*_[1].png: no face found" in unescape(error.value)
    assert "**bold**" not in error.value and "](http" not in error.value
    # The photo that could not be used, shown small with the reason; its name escaped.
    assert plain("*wall*_[1].png") + "**: no face found" in "".join(
        m.value for m in at.main.markdown
    )
    assert len(at.main.image) == 1


def test_enroll_a_class_from_csv_and_zip(monkeypatch, api_url, faces_dir):
    roster = (
        "student_id,name,class_id,consent_given_by,consent_relationship,consent_given_on,minor\n"
        "jolie,Angelina Jolie,room-1,A. Parent,parent,2026-09-01,\n"  # enrolled already (above)
        "jolie_b,Angelina B,,B. Guardian,guardian,2026-09-02,true\n"
        "wall,Just A Wall,,Just A Wall,self,2026-09-03,false\n"
        "ghost,Nobody Here,,N. Parent,parent,2026-09-01,\n"
        "bad id,Broken Row,,,,,\n"
        "kid,A Minor,,Kid Self,self,2026-09-01,true\n"
        "nocons,No Consent,,,,,\n"
    )
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("jolie_b/1.jpg", (faces_dir / "img5.jpg").read_bytes())
        z.writestr("jolie.jpg", (faces_dir / "img4.jpg").read_bytes())
        z.writestr("jolie_b_2.png", blank_png())
        z.writestr("wall.png", blank_png())
        z.writestr("stranger.jpg", (faces_dir / "img6.jpg").read_bytes())
        z.writestr("kid.jpg", (faces_dir / "img6.jpg").read_bytes())
        z.writestr("nocons.jpg", (faces_dir / "img6.jpg").read_bytes())
    at = app_at(monkeypatch, api_url, "views/enroll.py")
    assert "consent_given_by" in " ".join(texts(at.markdown))  # the columns are explained
    at.selectbox(key="bulk.class_choice").select("New class…")
    at.text_input(key="bulk.new_class").input("room-2")
    at.file_uploader(key="bulk.csv").set_value(("roster.csv", roster.encode(), "text/csv"))
    at.file_uploader(key="bulk.zip").set_value(
        ("photos.zip", archive.getvalue(), "application/zip")
    )
    at.button(key="FormSubmitter:enroll_bulk-Enroll class").click()
    at.run()
    # Not without saying that the signed consent forms are held.
    assert texts(at.main.warning) == [
        "Tick that a signed consent form is held for the students before enrolling them."
    ]
    at.selectbox(key="bulk.class_choice").select("New class…")
    at.text_input(key="bulk.new_class").input("room-2")
    at.file_uploader(key="bulk.csv").set_value(("roster.csv", roster.encode(), "text/csv"))
    at.file_uploader(key="bulk.zip").set_value(
        ("photos.zip", archive.getvalue(), "application/zip")
    )
    at.checkbox(key="bulk.forms_held").check()
    at.button(key="FormSubmitter:enroll_bulk-Enroll class").click()
    at.run(timeout=JOB_RUN_TIMEOUT)
    assert not at.exception, [e.value for e in at.exception]

    problems = " ".join(texts(at.markdown))
    assert "CSV line 7: a minor's consent must be given by a parent or guardian" in problems
    assert "CSV line 6: student_id 'bad id' must be" in problems
    assert "photo stranger.jpg: matches no student_id in the roster" in problems
    assert "student ghost: no photo in the zip (not enrolled)" in problems
    assert texts(at.main.warning) == [
        "1 of 3 enrollment jobs succeeded: 1 photo accepted, 2 rejected.",
        "Fewer than 3 photos could be used, so they may not be recognised in class photos: "
        "Angelina B (jolie_b): 1 of 2. Add clear photos of their faces on *Students and model*.",
    ]
    results = at.dataframe[0].value
    assert dict(zip(results["student_id"], results["state"])) == {
        "jolie": "already enrolled",
        "jolie_b": "succeeded",
        "wall": "failed",
        "nocons": "not_submitted",
    }
    # A row whose id is taken does not fail the batch: it is reported, and left as it was.
    assert texts(at.main.info) == [
        "Already enrolled, so not changed: Angelina Jolie (jolie). Their photos can be added "
        "to them on *Students and model*."
    ]
    # The photos that could not be used, each shown small with its reason and whose it is.
    shown = texts(at.main.markdown)
    assert "**jolie_b_2.png** (Angelina B (jolie_b)): no face found" in shown, shown
    assert "**wall.png** (Just A Wall (wall)): no face found" in shown, shown
    assert len(at.main.image) == 2
    errors = texts(at.main.error)
    assert len(errors) == 2 and errors[0].startswith("Just A Wall (wall): failed: ")
    assert "wall.png: no face found" in errors[0] and "(no_usable_photo)" in errors[0]
    # A row without consent is not enrolled: the API says what to send.
    assert errors[1].startswith("No Consent (nocons): not submitted: no consent to hold")


def test_enrolling_a_taken_id_offers_to_add_the_photos_instead(monkeypatch, api_url, faces_dir):
    at = app_at(monkeypatch, api_url, "views/enroll.py")
    enroll_form(at, "student_id").input("jolie")
    enroll_form(at, "name").input("A. Jolie")
    enroll_form(at, "class_choice").select("room-1")
    enroll_form(at, "photos").set_value([jpeg(faces_dir / "img5.jpg")])
    give_consent(at)
    enroll_form(at, "submit").click()
    at.run(timeout=JOB_RUN_TIMEOUT)
    assert not at.exception, [e.value for e in at.exception]
    # The API's 409, in its words; nothing was sent, and the form is empty again.
    [warning] = texts(at.main.warning)
    assert warning.startswith("student id 'jolie' is taken by a student enrolled already")
    assert "(the name given differs from theirs)" in warning
    assert enroll_form(at, "student_id").value == ""
    assert "Angelina Jolie (jolie) is enrolled already. Add this photo to them instead?" in texts(
        at.main.markdown
    )
    assert "1 photo not sent yet:" in texts(at.main.caption)
    assert at.checkbox(key="enroll.pending_rename").label == plain("Also rename them to A. Jolie")
    at.button(key="enroll.pending_add").click()  # the explicit choice; no rename
    at.run(timeout=JOB_RUN_TIMEOUT)
    assert not at.exception, [e.value for e in at.exception]
    assert texts(at.main.success) == [
        "1 of 1 photo could be used for Angelina Jolie (jolie), and the face model was updated."
    ], texts(at.main.error)
    assert not [b for b in at.button if b.key == "enroll.pending_add"]
    at.switch_page("views/students.py").run()
    table = at.dataframe[0].value.set_index("student_id")
    assert table.loc["jolie", "name"] == "Angelina Jolie"
    assert table.loc["jolie", "face photos learned"] == 5


def test_rename_and_add_photos_on_the_students_page(monkeypatch, api_url, faces_dir):
    at = app_at(monkeypatch, api_url, "views/students.py")
    at.selectbox(key="students.change_id").select("jolie_b")
    at.run()
    generation = 0
    box = at.text_input(key=f"students.name.jolie_b.{generation}")
    assert box.value == "Angelina B"
    box.input("**Angelina** [B](http://x)")
    at.button(key=f"students.rename.{generation}").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert texts(at.main.success) == ["Renamed jolie_b to **Angelina** [B](http://x)."]
    table = at.dataframe[0].value.set_index("student_id")
    assert table.loc["jolie_b", "name"] == "**Angelina** [B](http://x)"
    before = table.loc["jolie_b", "face photos learned"]

    generation = at.session_state["students.form_generation"]
    at.file_uploader(key=f"students.photos.{generation}").set_value([jpeg(faces_dir / "img6.jpg")])
    at.run()
    assert "1 photo to be sent:" in texts(at.main.caption)
    at.button(key=f"students.add.{generation}").click()
    at.run(timeout=JOB_RUN_TIMEOUT)
    assert not at.exception, [e.value for e in at.exception]
    assert texts(at.main.success) == [
        "1 of 1 enrollment job succeeded: 1 photo accepted, 0 rejected."
    ], texts(at.main.error)
    table = at.dataframe[0].value.set_index("student_id")
    assert table.loc["jolie_b", "face photos learned"] == before + 1
    # The uploader is a new, empty one.
    generation = at.session_state["students.form_generation"]
    assert at.file_uploader(key=f"students.photos.{generation}").value in (None, [])

    # A class to add them to is picked, or typed as a new one: never a near-copy of one there is.
    classes = sorted(
        {c for s in ApiClient(api_url, token=tokens.ADMIN).students() for c in s.class_ids}
    )
    picker = at.selectbox(key=f"students.class_choice.jolie_b.{generation}")
    assert picker.value == "keep" and picker.options[-1] == "New class…"
    picker.select("New class…")
    at.run()
    at.text_input(key=f"students.new_class.jolie_b.{generation}").input(classes[0].upper())
    at.file_uploader(key=f"students.photos.{generation}").set_value([jpeg(faces_dir / "img2.jpg")])
    at.run()
    at.button(key=f"students.add.{generation}").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(w.startswith("There is a class") for w in texts(at.main.warning)), texts(
        at.main.warning
    )
    table = at.dataframe[0].value.set_index("student_id")
    assert table.loc["jolie_b", "face photos learned"] == before + 1


def test_a_teacher_may_not_rename(monkeypatch, api_url):
    at = app_at(monkeypatch, api_url, "views/students.py", token=tokens.TEACHER)
    at.selectbox(key="students.change_id").select("jolie")
    at.run()
    at.text_input(key="students.name.jolie.0").input("Someone Else")
    at.button(key="students.rename.0").click()
    at.run()
    [error] = texts(at.main.error)
    assert error.startswith("Could not rename jolie: Your token's role may not do this"), error
    assert at.dataframe[0].value.set_index("student_id").loc["jolie", "name"] == "Angelina Jolie"


def test_take_attendance_then_see_it_in_the_attendance_page(monkeypatch, api_url, faces_dir):
    at = app_at(monkeypatch, api_url)  # the default page
    assert at.title[0].value == "Take attendance"
    at.selectbox(key="take.class_id").select("room-1")
    at.date_input(key="take.date").set_value(DAY)
    at.file_uploader(key="take.photos").set_value([jpeg(faces_dir / "couple.jpg")])
    at.button(key="FormSubmitter:take_attendance-Take attendance").click()
    at.run(timeout=JOB_RUN_TIMEOUT)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, texts(at.error)

    shown = metrics(at)
    assert shown["Present"] == "1 of 1" and shown["Absent"] == "0"
    assert int(shown["Unknown faces"]) >= 1
    markdown = texts(at.markdown)
    # The register of the session: every student of the class, with their status in words.
    assert "#### Register: room-1, 2026-11-02, whole day" in markdown, markdown
    assert "**Angelina Jolie** · :material/check_circle: Present" in markdown, markdown
    # Who is absent or present, in a line per status, before the rows and the photos.
    assert "**:material/check_circle: Present (1):** Angelina Jolie" in markdown, markdown
    # The annotated photos are the captioned images (the faces' crops have none).
    images = [i for i in at.image if any(i.captions)]
    assert len(images) == 1
    [caption] = [unescape(c) for c in images[0].captions]  # file names are escaped
    assert images[0].value[0]  # a media URL: the annotated JPEG was fetched and served
    assert caption.startswith("couple.jpg: 1 recognised (green), ") and "unknown (red)" in caption
    [alt] = [img.alt for img in images[0].proto.imgs]
    assert alt.startswith("Class photo couple.jpg, a box around each face found; named: ")
    # Under the photo, each face in words: the match graded against the API's threshold.
    assert any(
        re.fullmatch(
            r":material/check_circle: \*\*Face \d+:\*\* Angelina Jolie \((strong|"
            r"borderline) match.*\)",
            t,
        )
        for t in markdown
    ), markdown
    assert any(
        t.startswith(":material/help: ") and " with no match (red boxes)" in t for t in markdown
    ), markdown
    assert not images_without_alt(at)
    assert_no_jargon(at)

    # A rerun (any widget) keeps the result on screen, from the session, without a new job.
    at.run()
    assert metrics(at)["Present"] == "1 of 1"

    at.switch_page("views/attendance.py").run()
    at.selectbox(key="attendance.class_id").select("room-1")
    at.date_input(key="attendance.dates").set_value((DAY, DAY))
    at.run()
    assert not at.exception and not at.error, texts(at.error)
    table = at.dataframe[0].value
    assert table[["date", "class_id", "student_id", "name"]].to_dict("records") == [
        {
            "date": "2026-11-02",
            "class_id": "room-1",
            "student_id": "jolie",
            "name": "Angelina Jolie",
        }
    ]

    # The export is the API's: asked for once, noted in the audit log, then downloaded. (The
    # register above has download buttons of its own.)
    def range_export():
        return [d for d in at.get("download_button") if d.key == "attendance.export"]

    assert not range_export()
    at.button(key="attendance.export_prepare").click().run()
    assert not at.exception and not at.error, texts(at.error)
    [download] = range_export()
    assert not download.proto.disabled
    audit = requests.get(
        f"{api_url}/api/v1/audit", headers=tokens.bearer(tokens.ADMIN), timeout=10
    ).json()["entries"]
    assert (audit[0]["action"], audit[0]["target"]) == ("export_attendance", "room-1")

    at.selectbox(key="attendance.student_id").select("jolie")
    at.run()
    assert metrics(at)["Angelina Jolie: attendance rate"] == "100 %"
    assert not range_export()  # prepared for other filters: asked for again


def test_more_photos_than_one_request_takes_become_several_jobs(monkeypatch, api_url, faces_dir):
    monkeypatch.setenv("ATTENDANCE_MAX_RECOGNITION_PHOTOS", "1")
    at = app_at(monkeypatch, api_url)
    at.selectbox(key="take.class_id").select("room-1")
    at.date_input(key="take.date").set_value(DAY + dt.timedelta(days=1))
    at.file_uploader(key="take.photos").set_value(
        [jpeg(faces_dir / "couple.jpg"), jpeg(faces_dir / "selfie-many-people.jpg")]
    )
    at.button(key="FormSubmitter:take_attendance-Take attendance").click()
    at.run(timeout=JOB_RUN_TIMEOUT)
    assert not at.exception and not at.error, texts(at.error)
    bars = at.get("progress")
    assert [(b.value, b.proto.text) for b in bars] == [
        (100, "Photos batch 1 of 2: done (1/1 photos)"),
        (100, "Photos batch 2 of 2: done (1/1 photos)"),
    ]
    assert [unescape(i.captions[0]).split(":")[0] for i in at.image if any(i.captions)] == [
        "couple.jpg",
        "selfie-many-people.jpg",
    ]
    assert metrics(at)["Present"] == "1 of 1"


# --- roles after attendance was taken ----------------------------------------------------------


def test_a_viewer_sees_the_attendance_page(monkeypatch, api_url):
    at = app_at(monkeypatch, api_url, "views/attendance.py", token=tokens.VIEWER)
    at.date_input(key="attendance.dates").set_value((DAY, DAY))
    at.run()
    assert not at.exception and not at.main.error, texts(at.main.error)
    assert any("may read attendance but not the class rosters" in t for t in texts(at.main.caption))
    assert at.selectbox(key="attendance.class_id").options == ["All", "room-1"]
    table = at.dataframe[0].value
    assert table[["date", "class_id", "student_id", "name"]].to_dict("records") == [
        {
            "date": "2026-11-02",
            "class_id": "room-1",
            "student_id": "jolie",
            "name": "Angelina Jolie",
        }
    ]
    at.selectbox(key="attendance.student_id").select("jolie")
    at.run()
    assert metrics(at)["Angelina Jolie: attendance rate"] == "100 %"
    # Exporting needs a teacher: the page says so, and offers nothing to download.
    at.button(key="attendance.export_prepare").click().run()
    assert any("may read attendance but not export it" in t for t in texts(at.main.error))
    assert not at.get("download_button")
    # Taking attendance needs the teacher role: the page says so, in the API's words.
    at.switch_page("views/take_attendance.py").run()
    assert texts(at.main.error)[0].startswith(
        "Could not load the classes: Your token's role may not do this: the viewer role"
    )


def test_a_teacher_limited_to_room_1_sees_only_room_1(monkeypatch, api_url):
    at = app_at(monkeypatch, api_url, token=tokens.ROOM1_TEACHER)
    assert at.selectbox(key="take.class_id").options == ["room-1"]
    at.switch_page("views/students.py").run()
    classes = list(at.dataframe[0].value["classes"])
    assert classes and all("room-1" in c.split(", ") for c in classes), classes


# --- consent on the students page ----------------------------------------------------------------


def test_add_a_roster_student_record_and_withdraw_consent_on_the_students_page(
    monkeypatch, api_url
):
    at = app_at(monkeypatch, api_url, "views/students.py")
    # A student on the roster without photos: no consent, no face data; marked by hand.
    at.text_input(key="students.roster_id").input("kid-r")
    at.text_input(key="students.roster_name").input("Kid Roster")
    at.text_input(key="students.roster_class").input("room-3")
    at.button(key="FormSubmitter:students.roster-Add to the roster").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Kid Roster (kid-r) is on the roster of room-3." in texts(at.main.success)
    table = at.dataframe[0].value.set_index("student_id")
    assert (table.loc["kid-r", "consent"], table.loc["kid-r", "face data"]) == ("none", "none")
    assert any("No consent on record" in t and "kid-r" in t for t in texts(at.main.info))

    # Recording consent needs who gave it and a signed form held.
    at.selectbox(key="students.consent_id").select("kid-r")
    at.run()
    assert "No consent is on record for Kid Roster." in texts(at.main.markdown)
    record = "FormSubmitter:students.consent_form.kid-r-Record consent"
    at.text_input(key="students.consent_by").input("K. Parent")
    at.button(key=record).click()
    at.run()
    assert "Say who gave the consent and tick that a signed form is held." in texts(at.main.error)
    at.text_input(key="students.consent_by").input("K. Parent")
    at.date_input(key="students.consent_on").set_value(dt.date(2026, 9, 1))
    at.checkbox(key="students.form_held").check()
    at.button(key=record).click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Consent of Kid Roster recorded." in texts(at.main.success), texts(at.main.error)
    table = at.dataframe[0].value.set_index("student_id")
    assert table.loc["kid-r", "consent"] == "parent, 2026-09-01"

    # Withdrawing, for a student with face data: only once confirmed.
    assert table.loc["jolie_b", "face data"] == "held"
    at.selectbox(key="students.consent_id").select("jolie_b")
    at.run()
    assert at.button(key="students.withdraw.jolie_b").disabled
    at.checkbox(key="students.withdraw_sure.jolie_b").check()
    at.run()
    at.button(key="students.withdraw.jolie_b").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    [done] = [t for t in texts(at.main.success) if "withdrawn" in t]
    assert re.fullmatch(
        r"Consent of .* withdrawn: [1-9]\d* learned faces? and [1-9]\d* photos? erased\.", done
    ), done
    table = at.dataframe[0].value.set_index("student_id")
    assert (
        table.loc["jolie_b", "face data"] == "none"
        and table.loc["jolie_b", "face photos learned"] == 0
    )
    assert table.loc["jolie_b", "consent"].startswith("withdrawn ")
    # Still on the roster.
    assert "jolie_b" in table.index


def test_a_teacher_may_not_withdraw_consent(monkeypatch, api_url):
    at = app_at(monkeypatch, api_url, "views/students.py", token=tokens.TEACHER)
    at.selectbox(key="students.consent_id").select("jolie")
    at.run()
    at.checkbox(key="students.withdraw_sure.jolie").check()
    at.run()
    at.button(key="students.withdraw.jolie").click()
    at.run()
    [error] = texts(at.main.error)
    assert error.startswith("Could not withdraw the consent of jolie: Your token's role"), error
    table = at.dataframe[0].value.set_index("student_id")
    assert table.loc["jolie", "face data"] == "held"
