"""The Enroll and Students pages in a real browser (headless Chromium driven by Playwright).

Like tests/e2e/test_browser.py, everything is live: the API (werkzeug, in a thread), a real
Celery worker running FaceNet, and ``streamlit run src/attendance/frontend/app.py``; here the app starts with
the admin token in ATTENDANCE_API_TOKEN, so pages can be opened by URL (on a phone-sized window
the sidebar is folded away). Screenshots of both pages, at 1280x900 and 390x844, go to
var/test-artifacts/screenshots/ (ATTENDANCE_SCREENSHOTS_DIR names another folder).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import requests
from PIL import Image

from attendance.frontend.ui import WORD_JOINER
from tests import tokens
from tests.conftest import CELEB_DIR, REPO, stop_process
from tests.e2e.test_browser import browser, settle, start_streamlit  # noqa: F401 (a fixture)

pytestmark = [
    pytest.mark.redis,
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.model,
    pytest.mark.timeout(600),
]

SCREENSHOTS = Path(
    os.environ.get("ATTENDANCE_SCREENSHOTS_DIR", REPO / "var" / "test-artifacts" / "screenshots")
)
VIEWPORTS = {"1280x900": {"width": 1280, "height": 900}, "390x844": {"width": 390, "height": 844}}
PAGE_TIMEOUT = 30_000
JOB_TIMEOUT = 180_000
JOLIE = ["img2.jpg", "img4.jpg"]  # tests/data/faces
SEINFELD = "jerry_seinfeld"  # var/datasets/5-celebrity-faces/val/<person>


def seinfeld_photos(n: int) -> list[Path]:
    folder = CELEB_DIR / "val" / SEINFELD
    if not folder.is_dir():
        pytest.skip(f"{folder} is missing; `make provision` fetches the 5 Celebrity Faces")
    return sorted(folder.glob("*.jpg"))[:n]


@pytest.fixture(scope="module")
def app_url(browser, stack, api_url):  # noqa: F811 (browser is the imported fixture)
    with open(stack.root / "streamlit-enroll.log", "ab") as log:
        proc, url = start_streamlit(api_url, stack.env, log, token=tokens.ADMIN)
        yield url
        stop_process(proc)


def new_page(browser, size: str = "1280x900"):  # noqa: F811
    context = browser.new_context(viewport=VIEWPORTS[size])
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT)
    return context, page


def api_get(api_url: str, path: str) -> dict:
    resp = requests.get(f"{api_url}{path}", headers=tokens.bearer(tokens.ADMIN), timeout=10)
    assert resp.status_code == 200, (path, resp.status_code, resp.text)
    return resp.json()


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def open_enroll(page, app_url: str) -> None:
    page.goto(f"{app_url}/enroll")
    page.get_by_role("heading", name="Enroll", exact=True).wait_for()
    settle(page)


def fill(page, label: str, value: str) -> None:
    """Type into a text box and commit it (Enter), as the app reruns on every committed value."""
    box = page.get_by_role("textbox", name=label, exact=True).first
    box.fill(value)
    box.press("Enter")
    settle(page)


def choose_class(page, class_id: str) -> None:
    """Pick the student's class in the form's picker; one that does not exist yet through
    *New class…* and the box it brings."""
    picker = page.get_by_role("combobox", name="Class", exact=True)
    if picker.input_value() == class_id:
        return
    picker.click()
    options = page.get_by_role("option")
    names = options.all_inner_texts()
    if class_id in names:
        options.filter(has_text=re.compile(f"^{re.escape(class_id)}$")).click()
        settle(page)
        return
    page.get_by_role("option", name="New class…", exact=True).click()
    settle(page)
    fill(page, "Name of the new class", class_id)


def choose_photos(page, paths: list[Path]) -> None:
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(
        [str(p) for p in paths]
    )
    try:
        for p in paths:
            page.get_by_text(p.name, exact=True).first.wait_for()
    except Exception:
        screenshot(page, "debug-choose")
        raise
    settle(page)


def give_consent(page, given_by: str = "A. Parent") -> None:
    """Fill in the one-student form's consent: who gave it (a parent, today, for a minor: the
    defaults) and that a signed form is held."""
    fill(page, "Consent given by", given_by)
    page.get_by_text("A signed consent form is held", exact=True).click()
    settle(page)


def job_ids_shown(page) -> list[str]:
    """The job ids in the Enroll page's results table (its last column)."""
    cells = page.locator('[data-testid="stDataFrame"]').first.locator("td").all_text_contents()
    return [c for c in cells if re.fullmatch(r"[0-9a-f]{32}", c)]


def enroll_through_the_page(
    page, student_id: str, name: str, class_id: str, photos: list[Path]
) -> str:
    """Fill in the one-student form, check the thumbnails, submit, wait for the job to end;
    the job id the page shows."""
    fill(page, "Student id", student_id)
    fill(page, "Name", name)
    choose_class(page, class_id)
    choose_photos(page, photos)
    # Before submitting, a thumbnail of each photo to be sent, captioned with its name.
    form = page.locator('[data-testid="stMain"]')
    form.get_by_text(f"{len(photos)} photo{'s' * (len(photos) != 1)} to be sent:").wait_for()
    settle(page)
    form.locator('[data-testid="stImage"] img').nth(len(photos) - 1).wait_for()
    assert form.locator('[data-testid="stImage"] img').count() == len(photos)
    assert sorted(form.locator('[data-testid="stImageCaption"]').all_inner_texts()) == sorted(
        p.name for p in photos
    )
    # Not without consent: the page says what is missing and sends nothing.
    page.get_by_role("button", name="Enroll student").click()
    page.get_by_text("Say who gave the consent to hold the student's face data.").wait_for()
    settle(page)
    cells = page.locator('[data-testid="stDataFrame"] td').all_text_contents()
    assert student_id not in cells
    give_consent(page)
    page.get_by_role("button", name="Enroll student").click()
    # The results table names this student once the job has ended (the last one's result stays
    # on screen until then).
    page.locator('[data-testid="stDataFrame"] td').filter(
        has_text=re.compile(f"^{re.escape(student_id)}$")
    ).first.wait_for(
        state="attached", timeout=JOB_TIMEOUT
    )  # the grid's accessible table is not drawn
    settle(page)
    [job_id] = job_ids_shown(page)
    return job_id


def assert_form_is_empty(page, class_id: str | None = None) -> None:
    """The form is a new one: nothing typed, no photo; the class last enrolled into, if any, is
    the one the picker starts at."""
    for label in ("Student id", "Name", "Consent given by"):
        assert page.get_by_role("textbox", name=label, exact=True).first.input_value() == ""
    if class_id is not None:
        assert page.get_by_role("combobox", name="Class", exact=True).input_value() == class_id
    assert page.get_by_role("textbox", name="Name of the new class").count() == 0
    assert page.locator('[data-testid="stFileUploaderFile"]').count() == 0
    assert page.get_by_text("to be sent:").count() == 0


def test_two_students_in_a_row_each_get_only_their_own_photos(  # noqa: F811
    browser, app_url, api_url, faces_dir
):
    jolie = [faces_dir / name for name in JOLIE]
    seinfeld = seinfeld_photos(2)
    context, page = new_page(browser)
    try:
        open_enroll(page, app_url)
        first = enroll_through_the_page(page, "row_jolie", "Angelina Jolie", "room-e", jolie)
        page.get_by_text(
            "Angelina Jolie (row_jolie) is enrolled in room-e, and the face model was updated."
        ).wait_for()
        # Two photos are not enough: the page says how many more.
        page.get_by_text(
            "Only 2 of 2 photos could be used; add at least 1 more clear photo of the face"
        ).wait_for()
        assert_form_is_empty(page, "room-e")
        second = enroll_through_the_page(page, "row_seinfeld", "Jerry Seinfeld", "room-e", seinfeld)
        assert second != first
        assert_form_is_empty(page, "room-e")
    finally:
        context.close()

    # Each job saw its own student's photos only: the second got 2 photos, not 4.
    jobs = {
        sid: api_get(api_url, f"/api/v1/jobs/{job_id}")
        for sid, job_id in (("row_jolie", first), ("row_seinfeld", second))
    }
    for sid, photos in (("row_jolie", jolie), ("row_seinfeld", seinfeld)):
        job = jobs[sid]
        assert job["state"] == "succeeded", job
        result = job["result"]
        assert result["student_id"] == sid
        assert job["progress"]["total"] == len(photos), job
        assert result["accepted_photos"] + len(result["rejected"]) == len(photos), result
        assert {r["filename"] for r in result["rejected"]} <= {p.name for p in photos}
        student = api_get(api_url, f"/api/v1/students/{sid}")
        assert student["embeddings"] == result["accepted_photos"], (student, result)
        assert student["class_ids"] == ["room-e"]
        consent = student["consent"]
        assert (consent["given_by"], consent["relationship"], consent["minor"]) == (
            "A. Parent",
            "parent",
            True,
        )
        assert consent["recorded_by"] == "admin" and student["face_data"] is True
    assert jobs["row_jolie"]["result"]["accepted_photos"] == 2
    assert jobs["row_seinfeld"]["result"]["accepted_photos"] >= 1


def test_enrolling_a_taken_id_offers_to_add_the_photos(
    browser,
    app_url,
    api_url,  # noqa: F811
    faces_dir,
):
    before = api_get(api_url, "/api/v1/students/row_jolie")["embeddings"]
    context, page = new_page(browser)
    try:
        open_enroll(page, app_url)
        fill(page, "Student id", "row_jolie")
        fill(page, "Name", "Angelina Jolie")
        choose_class(page, "room-e")
        choose_photos(page, [faces_dir / "img5.jpg"])
        give_consent(page)
        page.get_by_role("button", name="Enroll student").click()
        page.get_by_text("student id 'row_jolie' is taken by a student enrolled already").wait_for()
        page.get_by_text(
            "Angelina Jolie (row_jolie) is enrolled already. Add this photo to them instead?"
        ).wait_for()
        settle(page)
        assert_form_is_empty(page)
        full_screenshot(page, "enroll-existing-id")
        assert api_get(api_url, "/api/v1/students/row_jolie")["embeddings"] == before
        page.get_by_role("button", name="Add the photo to row_jolie").click()
        page.get_by_text(
            "1 of 1 photo could be used for Angelina Jolie (row_jolie), and the face model was "
            "updated."
        ).wait_for(timeout=JOB_TIMEOUT)
    finally:
        context.close()
    assert api_get(api_url, "/api/v1/students/row_jolie")["embeddings"] == before + 1


HOSTILE = "**bold** [link](http://evil.example) <b>x</b> :red[red]"


def test_a_hostile_name_is_shown_as_typed(browser, app_url, tmp_path):  # noqa: F811
    wall = tmp_path / "wall.png"
    Image.new("RGB", (320, 240), (120, 140, 160)).save(wall)
    context, page = new_page(browser)
    try:
        open_enroll(page, app_url)
        fill(page, "Student id", "hostile")
        fill(page, "Name", HOSTILE)
        choose_class(page, "room-e")
        choose_photos(page, [wall])
        give_consent(page)
        page.get_by_role("button", name="Enroll student").click()
        alert = page.locator('[data-testid="stAlertContentError"]').filter(
            has_text="(hostile): failed:"
        )
        alert.wait_for(timeout=JOB_TIMEOUT)
        settle(page)
        # Exactly the characters typed; no link, no bold, no HTML, no coloured text.
        text = alert.locator('[data-testid="stMarkdownContainer"]')
        shown = text.inner_text().replace(WORD_JOINER, "")  # invisible: no bare-address link
        assert shown.startswith(f"{HOSTILE} (hostile): failed: "), shown
        assert text.locator("a, strong, b, em, img, code, span").count() == 0, text.inner_html()
        assert page.locator('a[href*="evil.example"]').count() == 0
        screenshot(page, "enroll-hostile-name")
    finally:
        context.close()


def full_screenshot(page, name: str) -> None:
    """The whole page at this width: Streamlit scrolls inside its own container, so the window
    is made as tall as the content for a moment."""
    screenshot(page, name)
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('[data-testid=stMain], "
        "[data-testid=stAppViewContainer], section')].map(e => e.scrollHeight))"
    )
    size = page.viewport_size
    if height > size["height"]:
        page.set_viewport_size({"width": size["width"], "height": height + 40})
        settle(page)
        screenshot(page, f"{name}-full")
        page.set_viewport_size(size)


@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_screenshots_of_the_enroll_and_students_pages(
    browser,
    app_url,
    faces_dir,  # noqa: F811
    size,
    tmp_path,
):
    wall = tmp_path / "wall.png"
    Image.new("RGB", (320, 240), (120, 140, 160)).save(wall)
    context, page = new_page(browser, size)
    try:
        open_enroll(page, app_url)
        fill(page, "Student id", "jolie_shot")
        fill(page, "Name", "Angelina Jolie")
        choose_class(page, "room-1")
        choose_photos(page, [faces_dir / name for name in JOLIE])
        give_consent(page)
        full_screenshot(page, f"enroll-{size}")
        # After an enrollment with a photo that could not be used: the warnings and the photo.
        open_enroll(page, app_url)
        fill(page, "Student id", f"shot-{size}")
        fill(page, "Name", "Angelina Jolie")
        choose_class(page, "room-e")
        choose_photos(page, [*(faces_dir / name for name in JOLIE), wall])
        give_consent(page)
        page.get_by_role("button", name="Enroll student").click()
        page.get_by_text("Photo that could not be used").wait_for(timeout=JOB_TIMEOUT)
        settle(page)
        shown = page.locator('[data-testid="stMain"]').inner_text()
        assert "wall.png: no face found" in shown, shown
        assert "Only 2 of 3 photos could be used; add at least 1 more clear photo" in shown
        full_screenshot(page, f"enroll-result-{size}")
        page.goto(f"{app_url}/students")
        page.get_by_role("heading", name="Students and model", exact=True).wait_for()
        settle(page)
        full_screenshot(page, f"students-{size}")
    finally:
        context.close()
