"""The register on the Take attendance and Attendance pages, run by Streamlit's AppTest against
the real API and a real worker: the register of the session after a recognition (absent first,
plain words), one-click status changes (checked through the API), saying who an unknown face is,
signing off (then a teacher's change is refused, in plain words) and the exports."""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest
import requests
from streamlit.testing.v1 import AppTest

from attendance.frontend.ui import WORD_JOINER
from tests import tokens
from tests.conftest import CELEB_DIR, REPO

try:
    from tests.consent import CONSENT_FORM
except ImportError:  # pragma: no cover - until the consent fields exist everywhere
    CONSENT_FORM = {
        "consent_given_by": "A. Parent",
        "consent_relationship": "parent",
        "consent_given_on": "2026-09-01",
        "minor": "true",
    }

pytestmark = [
    pytest.mark.redis,
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.model,
    pytest.mark.timeout(900),
]

APP = REPO / "src" / "attendance" / "frontend" / "app.py"
CLASS = "reg-room"
DAY = dt.date(2026, 11, 9)
PERIOD = "P1"
JOB_RUN_TIMEOUT = 240
SUBMIT = "FormSubmitter:take_attendance-Take attendance"


def unescape(markdown: str) -> str:
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown).replace(WORD_JOINER, "")


def texts(elements) -> list[str]:
    return [unescape(str(e.value)) for e in elements]


def outside_technical_details(at: AppTest, kind: str) -> list[str]:
    """The main area's elements of ``kind`` as text, but for what *Technical details* holds
    (the job ids and the model, for an administrator)."""
    inside = {
        id(e)
        for expander in at.main.expander
        if expander.label == "Technical details"
        for e in getattr(expander, kind)
    }
    return [unescape(str(e.value)) for e in getattr(at.main, kind) if id(e) not in inside]


def api(api_url: str, method: str, path: str, token: str = tokens.ADMIN, **kwargs):
    return requests.request(
        method, f"{api_url}{path}", headers=tokens.bearer(token), timeout=30, **kwargs
    )


def enroll(api_url: str, student_id: str, name: str, photos) -> None:
    files = [("photos", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
    form = {"student_id": student_id, "name": name, "class_id": CLASS, **CONSENT_FORM}
    resp = api(api_url, "POST", "/api/v1/students", data=form, files=files)
    assert resp.status_code == 202, resp.text
    for _ in range(1200):
        job = api(api_url, "GET", resp.json()["status_url"]).json()
        if job["state"] in ("succeeded", "failed"):
            break
        time.sleep(0.2)
    assert job["state"] == "succeeded", job


@pytest.fixture(scope="module")
def register_class(api_url, faces_dir):
    seinfeld = CELEB_DIR / "val" / "jerry_seinfeld"
    if not seinfeld.is_dir():
        pytest.skip(f"{seinfeld} is missing; `make provision` fetches the 5 Celebrity Faces")
    enroll(api_url, "jolie-reg", "Angelina Jolie", [faces_dir / "img2.jpg", faces_dir / "img4.jpg"])
    enroll(api_url, "seinfeld-reg", "Jerry Seinfeld", sorted(seinfeld.glob("*.jpg"))[:3])
    return CLASS


def register(api_url: str, period: str = PERIOD) -> dict:
    resp = api(api_url, "GET", f"/api/v1/attendance/{CLASS}/{DAY}", params={"period": period})
    assert resp.status_code == 200, resp.text
    return {r["student_id"]: r for r in resp.json()["rows"]} | {"_": resp.json()}


def app(monkeypatch, api_url: str, token: str = tokens.ADMIN) -> AppTest:
    monkeypatch.setenv("ATTENDANCE_API_URL", api_url)
    monkeypatch.setenv("ATTENDANCE_API_TOKEN", token)
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def status_control(at: AppTest, student_id: str):
    """The one-click status control of a student's row (its key names the row's mark)."""
    [control] = [c for c in at.segmented_control if f".status.{student_id}." in str(c.key)]
    return control


def take_attendance(at: AppTest, faces_dir, period: str = PERIOD) -> AppTest:
    at.selectbox(key="take.class_id").select(CLASS)
    at.date_input(key="take.date").set_value(DAY)
    at.text_input(key="take.period").input(period)
    at.file_uploader(key="take.photos").set_value(
        [("couple.jpg", (faces_dir / "couple.jpg").read_bytes(), "image/jpeg")]
    )
    at.button(key=SUBMIT).click()
    at.run(timeout=JOB_RUN_TIMEOUT)
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_register_after_a_recognition(monkeypatch, api_url, faces_dir, register_class):
    at = take_attendance(app(monkeypatch, api_url), faces_dir)
    assert not at.main.error, texts(at.main.error)
    shown = texts(at.main.markdown)
    assert f"#### Register: {CLASS}, {DAY}, period {PERIOD}" in shown, shown
    # Absent first: Seinfeld is not in the photo, Jolie is.
    rows = [t for t in shown if t.startswith("**") and " · " in t]
    assert [r.split("**")[1] for r in rows] == ["Jerry Seinfeld", "Angelina Jolie"], rows
    assert "Absent" in rows[0] and "Present" in rows[1]
    captions = texts(at.main.caption)
    assert any(c.startswith("seen in a class photo (strong match") for c in captions), captions
    assert "nothing marked them" in captions
    readable = outside_technical_details(at, "markdown") + outside_technical_details(at, "caption")
    assert not any(
        word in " ".join(readable).lower()
        for word in ("distance", "cosine", "embedding", "gallery version", "worker")
    ), readable
    # Who is absent and who present, before the rows; the photo's faces in words.
    assert "**:material/cancel: Absent (1):** Jerry Seinfeld" in shown, shown
    assert any(t.startswith(":material/help: 1 face with no match") for t in shown), shown
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Present"] == "1 of 2" and metrics["Absent"] == "1"
    # The period is remembered for the next recognition.
    assert at.session_state["take_attendance.last_period"] == PERIOD

    # One click: Seinfeld is late. The API's register says so, as a teacher's mark.
    status_control(at, "seinfeld-reg").set_value("late").run()
    assert not at.exception and not at.main.error, texts(at.main.error)
    after = register(api_url)["seinfeld-reg"]
    assert (after["status"], after["source"], after["marked_by"]) == ("late", "manual", "admin")
    assert status_control(at, "seinfeld-reg").value == "late"
    assert any(t.startswith("Jerry Seinfeld: late (was absent)") for t in texts(at.main.success))
    assert any(c.startswith("marked by admin at ") for c in texts(at.main.caption))

    # The unknown face (Brad Pitt): say it is Seinfeld; his register row rests on that face.
    pickers = [s for s in at.selectbox if str(s.key).startswith("take.face.")]
    assert pickers, "an unknown face to say who it is"
    pick = pickers[0]
    [seinfeld] = [o for o in pick.options if "seinfeld-reg" in o]
    pick.select(seinfeld).run()
    face_key = str(pick.key).removesuffix(".pick")
    at.button(key=f"{face_key}.save").click().run()
    assert not at.exception and not at.main.error, texts(at.main.error)
    after = register(api_url)["seinfeld-reg"]
    assert after["job_id"] and after["face"] is not None, after
    assert after["status"] in ("present", "late")
    assert any(t.startswith("The face is Jerry Seinfeld") for t in texts(at.main.success))

    # Sign off, with a confirmation first.
    prefix = str(status_control(at, "jolie-reg").key).split(".status.")[0]
    at.button(key=f"{prefix}.finalize").click().run()
    assert any(t.startswith("Sign off the register of") for t in texts(at.main.warning))
    assert register(api_url)["_"]["finalized"] is None  # not yet: only once confirmed
    at.button(key=f"{prefix}.finalize_yes").click().run()
    lock = register(api_url)["_"]["finalized"]
    assert lock and lock["finalized_by"] == "admin", lock
    assert any(t.startswith("Signed off by admin on ") for t in texts(at.main.success))

    # The exports are the API's, asked for on click; AppTest does not click a download, so
    # the button's data is checked to be the deferred export.
    keys = {str(d.key) for d in at.get("download_button")}
    assert {f"{prefix}.export.csv", f"{prefix}.export.xlsx"} <= keys, keys


def test_a_teacher_is_told_in_plain_words_the_register_is_signed_off(
    monkeypatch, api_url, faces_dir, register_class
):
    # The register of the first test is signed off (it runs first: same module).
    assert register(api_url)["_"]["finalized"], "the first test signed it off"
    at = app(monkeypatch, api_url, token=tokens.TEACHER)
    at.switch_page("views/attendance.py").run()
    at.selectbox(key="attendance.register.class_id").select(CLASS).run()
    at.date_input(key="attendance.register.date").set_value(DAY).run()
    at.selectbox(key="attendance.register.period").select(PERIOD).run()
    assert not at.exception and not at.main.error, texts(at.main.error)
    assert any(t.startswith("Signed off by admin") for t in texts(at.main.success))
    status_control(at, "jolie-reg").set_value("excused").run()
    [error] = texts(at.main.error)
    assert error.startswith("Could not mark Angelina Jolie Excused: This register is signed off")
    assert "ask an administrator to correct it" in error
    assert register(api_url)["jolie-reg"]["status"] == "present"
    # The control went back to what the register says.
    assert status_control(at, "jolie-reg").value == "present"


def test_the_attendance_page_shows_every_student_of_a_register(
    monkeypatch, api_url, register_class
):
    at = app(monkeypatch, api_url)
    at.switch_page("views/attendance.py").run()
    at.selectbox(key="attendance.register.class_id").select(CLASS).run()
    at.date_input(key="attendance.register.date").set_value(DAY).run()
    assert PERIOD in at.selectbox(key="attendance.register.period").options
    at.selectbox(key="attendance.register.period").select(PERIOD).run()
    assert not at.exception and not at.main.error, texts(at.main.error)
    shown = texts(at.main.markdown)
    rows = [t for t in shown if t.startswith("**") and " · " in t]
    assert sorted(r.split("**")[1] for r in rows) == ["Angelina Jolie", "Jerry Seinfeld"]
    # An admin still corrects a signed-off register.
    status_control(at, "jolie-reg").set_value("excused").run()
    assert not at.main.error, texts(at.main.error)
    assert register(api_url)["jolie-reg"]["status"] == "excused"
    # A note, kept with the status.
    [note] = [t for t in at.text_input if ".note.seinfeld-reg." in str(t.key)]
    note.input("the bus was late")
    at.button(key=f"{note.key}.save").click().run()
    assert not at.main.error, texts(at.main.error)
    after = register(api_url)["seinfeld-reg"]
    assert (after["status"], after["note"]) == ("late", "the bus was late")
    assert any("note: the bus was late" in c for c in texts(at.main.caption))
    # The whole day's register is another one: nobody marked there.
    at.selectbox(key="attendance.register.period").select("").run()
    rows = [t for t in texts(at.main.markdown) if t.startswith("**") and " · " in t]
    assert all("Absent" in r for r in rows), rows

    # Over a range: each student's absences, from the API's report of the class.
    at.selectbox(key="attendance.class_id").select(CLASS)
    at.date_input(key="attendance.dates").set_value((DAY, DAY)).run()
    assert not at.exception and not at.main.error, texts(at.main.error)
    [absences] = [d for d in at.dataframe if "absent on" in d.value.columns]
    table = absences.value.set_index("student")
    assert table.loc["Jerry Seinfeld (seinfeld-reg)", "sessions"] == 1
    assert table.loc["Jerry Seinfeld (seinfeld-reg)", "attended"] == 1  # late counts
    assert table.loc["Angelina Jolie (jolie-reg)", "excused"] == 1
    assert table.loc["Angelina Jolie (jolie-reg)", "attended"] == 0
    keys = {str(d.key) for d in at.get("download_button")}
    assert {"attendance.report.absences.csv", "attendance.report.absences.xlsx"} <= keys


def test_a_wrong_match_is_set_aside(monkeypatch, api_url, faces_dir, register_class):
    at = take_attendance(app(monkeypatch, api_url), faces_dir, period="P9")
    assert register(api_url, "P9")["jolie-reg"]["status"] == "present"
    # In Jolie's row, "Not a student": the face that marked her is nobody of the class.
    [reject] = [
        b for b in at.button if ".fix.jolie-reg." in str(b.key) and b.key.endswith(".reject")
    ]
    reject.click().run()
    assert not at.exception and not at.main.error, texts(at.main.error)
    after = register(api_url, "P9")["jolie-reg"]
    assert after["status"] == "absent", after
    assert any(
        t.startswith("Face set aside: not a student of this class; Angelina Jolie is no longer")
        for t in texts(at.main.success)
    )
    rows = [t for t in texts(at.main.markdown) if t.startswith("**") and " · " in t]
    assert all("Absent" in r for r in rows), rows
