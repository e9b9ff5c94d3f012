"""The Enroll page's class picker and what it says after an enrollment, and the Monitoring
page's health summary and Flower link, through Streamlit's AppTest against the real API and a
real worker (the ``stack`` fixture's, as in test_frontend_apptest.py)."""

from __future__ import annotations

import io
import time
import zipfile

import pytest
import requests

from tests import tokens
from tests.emulators import free_port
from tests.integration.test_frontend_apptest import (
    JOB_RUN_TIMEOUT,
    app_at,
    blank_png,
    enroll_form,
    give_consent,
    jpeg,
    shown_text,
    texts,
)

pytestmark = [
    pytest.mark.redis,
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.model,
    pytest.mark.timeout(600),
]

NEW = "New class…"
NONE = "No class"
NONE_LABEL = "No class (on no register until one is added)"


def put_on_roster(api_url: str, student_id: str, class_id: str) -> None:
    """A student without photos in ``class_id``: how a class comes to be without an enrollment."""
    resp = requests.post(
        f"{api_url}/api/v1/students",
        json={"student_id": student_id, "name": f"Student {student_id}", "class_id": class_id},
        headers=tokens.bearer(tokens.ADMIN),
        timeout=10,
    )
    assert resp.status_code in (200, 201), resp.text


def student_status(api_url: str, student_id: str) -> int:
    return requests.get(
        f"{api_url}/api/v1/students/{student_id}", headers=tokens.bearer(tokens.ADMIN), timeout=10
    ).status_code


def wait_until_ready(api_url: str, timeout: float = 180) -> None:
    """Until /readyz says ready: the module's worker takes a while to load its model."""
    deadline = time.monotonic() + timeout
    while requests.get(f"{api_url}/readyz", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, requests.get(f"{api_url}/readyz", timeout=10).text
        time.sleep(1)


def fill_student(at, student_id: str, photos) -> None:
    enroll_form(at, "student_id").input(student_id)
    enroll_form(at, "name").input("Angelina Jolie")
    enroll_form(at, "photos").set_value(photos)
    give_consent(at)


def test_the_class_picker_never_picks_a_class_by_itself(monkeypatch, api_url, faces_dir):
    at = app_at(monkeypatch, api_url, "views/enroll.py")
    picker = enroll_form(at, "class_choice")
    assert picker.options == [NEW, NONE_LABEL] and picker.value is None
    # The only class there is: chosen already.
    put_on_roster(api_url, "roster_a", "room-a")
    at = app_at(monkeypatch, api_url, "views/enroll.py")
    assert enroll_form(at, "class_choice").value == "room-a"
    # Two classes: none is chosen, and sending without one is refused before anything is sent.
    put_on_roster(api_url, "roster_b", "room-b")
    at = app_at(monkeypatch, api_url, "views/enroll.py")
    picker = enroll_form(at, "class_choice")
    assert picker.options == ["room-a", "room-b", NEW, NONE_LABEL] and picker.value is None
    fill_student(at, "picky", [jpeg(faces_dir / "img2.jpg")])
    enroll_form(at, "submit").click()
    at.run()
    assert texts(at.main.warning) == [
        "Choose the student's class, or *New class…* to make one, or *No class*."
    ]
    assert student_status(api_url, "picky") == 404
    assert enroll_form(at, "student_id").value == "picky"  # kept, to be sent once it is right

    # "New class…" brings a box for its name, which is checked as the API checks a class id.
    assert not [t for t in at.text_input if t.key and t.key.startswith("enroll.new_class")]
    enroll_form(at, "class_choice").select(NEW)
    at.run()
    for typed, refusal in (
        ("room 1!", "“room 1!” cannot be a class name: use 1-64 letters, digits"),
        ("Room-A", "There is a class “room-a” already: choose it in the list"),
        ("", "Type the name of the new class."),
    ):
        enroll_form(at, "new_class").input(typed)
        enroll_form(at, "submit").click()
        at.run()
        [warning] = texts(at.main.warning)
        assert warning.startswith(refusal), (typed, warning)
        assert student_status(api_url, "picky") == 404
    assert not at.main.success


def test_too_few_usable_photos_and_the_rejected_ones_are_shown(monkeypatch, api_url, faces_dir):
    put_on_roster(api_url, "roster_c", "room-c")  # at least two classes, whatever ran before
    at = app_at(monkeypatch, api_url, "views/enroll.py")
    enroll_form(at, "class_choice").select("room-c")
    fill_student(
        at,
        "few",
        [
            jpeg(faces_dir / "img2.jpg"),
            ("wall.png", blank_png(), "image/png"),
            jpeg(faces_dir / "img4.jpg"),
        ],
    )
    enroll_form(at, "submit").click()
    at.run(timeout=JOB_RUN_TIMEOUT)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.main.success
    assert texts(at.main.warning) == [
        "Angelina Jolie (few) is enrolled in room-c, and the face model was updated.",
        "Only 2 of 3 photos could be used; add at least 1 more clear photo of the face (on "
        "*Students and model*, *Add photos*), or the student may not be recognised.",
    ]
    # The photo that could not be used: small, under its own name, with the reason in words.
    assert "**wall.png**: no face found" in texts(at.main.markdown)
    [rejected] = at.main.image  # the form's own previews are gone with its photos
    assert rejected.proto.imgs[0].url
    # In words people use: none of the machinery's.
    words = shown_text(at).lower()
    for technical in ("embedding", "gallery", "facenet", "opencv", "cosine", "distance"):
        assert technical not in words, technical
    # The next student starts in the class this one went to.
    assert enroll_form(at, "class_choice").value == "room-c"


def test_a_student_enrolled_in_no_class_is_a_warning_not_a_success(monkeypatch, api_url, faces_dir):
    at = app_at(monkeypatch, api_url, "views/enroll.py")
    enroll_form(at, "class_choice").select(NONE)
    fill_student(at, "nowhere", [jpeg(faces_dir / p) for p in ("img2.jpg", "img4.jpg", "img5.jpg")])
    enroll_form(at, "submit").click()
    at.run(timeout=JOB_RUN_TIMEOUT)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.main.success
    assert texts(at.main.warning) == [
        "Angelina Jolie (nowhere) is enrolled in no class: 3 of 3 photos could be used, and "
        "the face model was updated.",
        "Angelina Jolie (nowhere) is in no class, so no register lists them: add them to a "
        "class on *Students and model*.",
    ]
    # "No class" is never remembered: the next student's class is chosen again.
    assert enroll_form(at, "class_choice").value is None


def test_the_monitoring_page_says_how_the_system_is_doing(monkeypatch, api_url):
    monkeypatch.setenv("ATTENDANCE_FLOWER_URL", "https://flower.school.example:5555/")
    wait_until_ready(api_url)
    at = app_at(monkeypatch, api_url, "views/monitoring.py")
    [summary] = texts(at.main.success)
    assert summary.startswith("Everything is working: the API, the job queue, the photo store")
    assert summary.endswith("and 1 worker answers.")
    [lines] = [m for m in texts(at.main.markdown) if m.startswith("- ")]
    for part in (
        "The API: it answers",
        "The job queue (Redis)",
        "The photo store",
        "The records (students, registers, accounts)",
        "The workers, which read the photos: 1 worker answers",
        "The face model: it recognises",
    ):
        assert f":green[:material/check_circle: **Working**] · {part}" in lines, (part, lines)
    for technical in ("embedding", "gallery", "Facenet", "cosine"):
        assert technical not in lines
    # The API's own checks, behind an expander.
    [details] = at.main.expander
    assert details.label == "The API's own checks (GET /readyz)"
    checks = details.dataframe[0].value
    assert dict(zip(checks["check"], checks["status"])) == {
        "redis": "ok",
        "blob_store": "ok",
        "records": "ok",
        "workers": "ok",
    }
    # Flower at the address of the setting, and how its login works.
    [flower] = [b for b in at.main.link_button if b.value == "Open Flower"]
    assert flower.proto.url == "https://flower.school.example:5555"
    login = " ".join(texts(at.main.markdown))
    assert "var/flower-credentials" in login and "FLOWER_BASIC_AUTH" in login
    [docs] = [b for b in at.main.link_button if b.value == "API documentation"]
    assert docs.proto.url == f"{api_url}/api/v1/docs"
    # The sidebar's API link opens the API's documentation page too.
    api_link = at.sidebar.success[0].value
    assert api_link.endswith(f"](<{api_url}/api/v1/docs>)"), api_link


def test_the_monitoring_page_without_a_login_or_an_api(monkeypatch, api_url):
    monkeypatch.delenv("ATTENDANCE_FLOWER_URL", raising=False)
    monkeypatch.setenv("ATTENDANCE_FLOWER_PORT", "6555")
    wait_until_ready(api_url)
    at = app_at(monkeypatch, api_url, "views/monitoring.py", token=None)
    assert texts(at.main.success)[0].startswith("Everything is working")
    assert "Log in as a teacher or an administrator to see the face model here too." in texts(
        at.main.caption
    )
    [flower] = [b for b in at.main.link_button if b.value == "Open Flower"]
    assert flower.proto.url == "http://127.0.0.1:6555"

    down = f"http://127.0.0.1:{free_port()}"
    at = app_at(monkeypatch, down, "views/monitoring.py", token=None)
    errors = texts(at.main.error)
    assert errors[0].startswith("The API does not answer"), errors
    assert any(f"The API at {down} is not reachable" in e for e in errors), errors
    [lines] = [m for m in texts(at.main.markdown) if m.startswith("- ")]
    assert ":red[:material/cancel: **Not working**] · The API: it does not answer" in lines
    assert lines.count(":gray[:material/help: **Unknown**]") == 4
    assert not at.main.expander


def test_a_class_roster_naming_a_mistyped_class_enrolls_nobody(monkeypatch, api_url, faces_dir):
    put_on_roster(api_url, "roster_t", "room-t")
    at = app_at(monkeypatch, api_url, "views/enroll.py")
    assert at.selectbox(key="bulk.class_choice").options[0] == "None: each row names its class"
    roster = b"student_id,name,class_id\nbk001,Ada,Room-T\nbk002,Alan,room-tt\n"
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("bk001.jpg", (faces_dir / "img2.jpg").read_bytes())
        zf.writestr("bk002.jpg", (faces_dir / "img4.jpg").read_bytes())
    at.file_uploader(key="bulk.csv").set_value([("roster.csv", roster, "text/csv")])
    at.file_uploader(key="bulk.zip").set_value(
        [("photos.zip", archive.getvalue(), "application/zip")]
    )
    at.checkbox(key="bulk.forms_held").check()
    next(b for b in at.button if b.label == "Enroll class").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    [warning] = texts(at.main.warning)
    assert warning.startswith("Nothing was enrolled:"), warning
    assert "class Room-T: there is a class room-t already" in warning
    assert "do not exist yet (room-tt)" in warning
    assert student_status(api_url, "bk001") == 404
    assert student_status(api_url, "bk002") == 404
