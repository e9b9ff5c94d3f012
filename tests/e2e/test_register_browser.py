"""The register in a real browser (headless Chromium driven by Playwright), on the real stack:
take attendance on a class photo, then the register of that session: correct a status with one
click, say who the unknown face is, sign it off, download the CSV; then the same register on the
Attendance page. Every step is checked on the page and through the API. Screenshots of both pages
at 1280x900 and 390x844 go to var/test-artifacts/screenshots/ (register-*.png). Then what a phone
sends: a HEIC photo taken with the phone on its side, through the API and the page; and none of
Streamlit's developer chrome at either size (chrome-*.png)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import time
from pathlib import Path

import pytest
import requests

from attendance.frontend.register import row_key
from tests import tokens
from tests.consent import CONSENT_FORM
from tests.e2e.test_browser import browser, settle  # noqa: F401 (a fixture)
from tests.e2e.test_enroll_browser import (  # noqa: F401 (a fixture)
    JOB_TIMEOUT,
    VIEWPORTS,
    app_url,
    full_screenshot,
    new_page,
    screenshot,
    seinfeld_photos,
)
from tests.heic import sideways_heic_of

pytestmark = [
    pytest.mark.redis,
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.model,
    pytest.mark.timeout(900),
]

CLASS = "reg-browser"
JOLIE, SEINFELD = "jolie-rb", "seinfeld-rb"


def api(api_url: str, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(
        method, f"{api_url}{path}", headers=tokens.bearer(tokens.ADMIN), timeout=30, **kwargs
    )


def enroll(api_url: str, student_id: str, name: str, photos) -> None:
    files = [("photos", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
    form = {"student_id": student_id, "name": name, "class_id": CLASS, **CONSENT_FORM}
    resp = api(api_url, "POST", "/api/v1/students", data=form, files=files)
    assert resp.status_code == 202, resp.text
    wait_for_job(api_url, resp.json()["status_url"])


def wait_for_job(api_url: str, status_url: str) -> dict:
    for _ in range(1200):
        job = api(api_url, "GET", status_url).json()
        if job["state"] in ("succeeded", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"{status_url} did not finish")


@pytest.fixture(scope="module")
def register_class(api_url, faces_dir):
    """Angelina Jolie (in couple.jpg) and Jerry Seinfeld (not in it) in one class."""
    enroll(api_url, JOLIE, "Angelina Jolie", [faces_dir / "img2.jpg", faces_dir / "img4.jpg"])
    enroll(api_url, SEINFELD, "Jerry Seinfeld", seinfeld_photos(3))
    return CLASS


def the_register(api_url: str, period: str) -> dict:
    today = dt.date.today().isoformat()
    resp = api(api_url, "GET", f"/api/v1/attendance/{CLASS}/{today}", params={"period": period})
    assert resp.status_code == 200, resp.text
    return resp.json()


def rows_by_id(register: dict) -> dict[str, dict]:
    return {r["student_id"]: r for r in register["rows"]}


def row(page, student_id: str):
    """A student's row of the register on the page."""
    return page.locator(f".st-key-register-row-{row_key(student_id)}")


def shown_rows(page) -> list[str]:
    return page.locator('[class*="st-key-register-row-"]').all_inner_texts()


def open_take_attendance(page, app_url: str) -> None:
    """Take attendance, with the class picked."""
    page.goto(f"{app_url}/")
    page.get_by_role("heading", name="Take attendance", exact=True).wait_for()
    settle(page)
    page.get_by_role("combobox", name="Class").click()
    page.get_by_role("option", name=CLASS).click()
    settle(page)


def open_session_on_attendance(page, app_url: str, period: str) -> None:
    """The *Attendance* page showing today's register of CLASS for ``period``."""
    page.goto(f"{app_url}/attendance")
    page.get_by_role("heading", name="Register of a session").wait_for()
    settle(page)
    page.get_by_role("combobox", name="Class").first.click()
    page.get_by_role("option", name=CLASS).click()
    settle(page)
    page.get_by_role("combobox", name="Period").click()
    page.get_by_role("option", name=period, exact=True).click()
    settle(page)
    page.get_by_text(f"Register: {CLASS}, {dt.date.today()}, period {period}").wait_for()


def take_attendance(page, app_url: str, faces_dir, period: str, photo: Path | None = None) -> None:
    photo = photo or faces_dir / "couple.jpg"
    open_take_attendance(page, app_url)
    # Inside the form: typed values are sent with the form (Enter would submit it).
    page.get_by_role("textbox", name="Period").fill(period)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(photo))
    page.get_by_text(photo.name, exact=True).first.wait_for()
    page.get_by_role("button", name="Take attendance").click()
    page.get_by_text(f"Register: {CLASS}, ").wait_for(timeout=JOB_TIMEOUT)
    settle(page)


def click_status(page, student_id: str, label: str) -> None:
    # A segmented control: react-aria's toggle buttons, one "radio" per status.
    row(page, student_id).get_by_role("radio", name=label, exact=True).click()
    settle(page)


def image_loaded(locator) -> bool:
    locator.wait_for()
    return locator.evaluate("img => img.complete && img.naturalWidth > 0")


def test_take_attendance_correct_assign_sign_off_and_export(
    browser, app_url, api_url, faces_dir, register_class
):
    period = "P1"
    context, page = new_page(browser, "1280x900")
    try:
        take_attendance(page, app_url, faces_dir, period)
        page.get_by_text(f"Register: {CLASS}, {dt.date.today()}, period {period}").wait_for()

        # Every student of the class, absent first, each status in words.
        rows = shown_rows(page)
        assert len(rows) == 2, rows
        assert "Jerry Seinfeld" in rows[0] and "Absent" in rows[0], rows
        assert "nothing marked them" in rows[0]
        assert "Angelina Jolie" in rows[1] and "Present" in rows[1], rows
        assert "seen in a class photo (strong match" in rows[1] or (
            "borderline match — check" in rows[1]
        ), rows[1]
        body = page.locator('[data-testid="stMain"]').inner_text().lower()
        jargon = ("distance", "cosine", "embedding", "gallery version", "facenet", "worker")
        assert not any(w in body for w in jargon), body
        # The face that marked her, cut from the photo.
        assert image_loaded(row(page, JOLIE).locator("img").first)
        register = rows_by_id(the_register(api_url, period))
        assert (register[JOLIE]["status"], register[JOLIE]["source"]) == ("present", "face")
        assert register[SEINFELD]["status"] == "absent" and register[SEINFELD]["source"] is None
        # The annotated photo stays, with its caption.
        caption = page.locator('[data-testid="stImageCaption"]').filter(has_text="couple.jpg:")
        assert caption.first.inner_text().startswith("couple.jpg: 1 recognised (green)")
        full_screenshot(page, "register-take-attendance-1280x900")

        # One click: Seinfeld is late; the page and the API say so.
        click_status(page, SEINFELD, "Late")
        page.get_by_text("Jerry Seinfeld: late (was absent)").wait_for()
        row(page, SEINFELD).get_by_text("marked by admin at").wait_for()
        after = rows_by_id(the_register(api_url, period))[SEINFELD]
        assert (after["status"], after["source"], after["marked_by"]) == ("late", "manual", "admin")
        rows = shown_rows(page)
        assert "Late" in rows[0] and "Jerry Seinfeld" in rows[0], rows

        # The unknown face (Brad Pitt): its crop, a "This is…" picker, and learning it.
        cards = page.locator('[class*="st-key-unknown-face-"]')
        page.get_by_text("Faces nobody was matched to (1)").wait_for()
        assert cards.count() == 1
        card = cards.first
        assert image_loaded(card.locator("img").first)
        picker = card.get_by_role("combobox", name="This is…")
        picker.click()
        picker.press_sequentially("Seinfeld")  # an empty picker lists its options once typed in
        page.get_by_role("option", name=f"Jerry Seinfeld ({SEINFELD})").click()
        settle(page)
        card.get_by_text("Learn this face").click()
        settle(page)
        before = api(api_url, "GET", f"/api/v1/students/{SEINFELD}").json()["embeddings"]
        card.get_by_role("button", name="Save").click()
        settle(page)
        page.get_by_text("The face is Jerry Seinfeld: marked present").wait_for()
        page.get_by_text("Faces nobody was matched to (0)").wait_for()
        after = rows_by_id(the_register(api_url, period))[SEINFELD]
        # A teacher's late stays late, now resting on that face.
        assert after["status"] == "late" and after["job_id"] and after["face"] is not None, after
        assert image_loaded(row(page, SEINFELD).locator("img").first)
        # Learning it is an enrollment, followed on the page: Brad Pitt's face is unlike
        # Seinfeld's photos, so it may well be refused, and the page says which.
        outcome = page.get_by_text("The face was added to Jerry Seinfeld's photos").or_(
            page.get_by_text("The face was not added to Jerry Seinfeld's photos")
        )
        outcome.first.wait_for(timeout=JOB_TIMEOUT)
        settle(page)
        added = "was added" in outcome.first.inner_text()
        embeddings = api(api_url, "GET", f"/api/v1/students/{SEINFELD}").json()["embeddings"]
        assert embeddings == before + (1 if added else 0), (embeddings, before, added)

        # Sign off, confirmed; then the page says so.
        assert the_register(api_url, period)["finalized"] is None
        page.get_by_role("button", name="Sign off the register").click()
        settle(page)
        page.get_by_text("After that only an administrator can change it.").wait_for()
        assert the_register(api_url, period)["finalized"] is None
        page.get_by_role("button", name="Yes, sign it off").click()
        settle(page)
        page.get_by_text("Signed off by admin on").wait_for()
        lock = the_register(api_url, period)["finalized"]
        assert lock and lock["finalized_by"] == "admin", lock

        # The CSV download is the API's export of this register.
        with page.expect_download() as download:
            page.get_by_role("button", name="Download CSV").click()
        path = download.value.path()
        assert download.value.suggested_filename == (
            f"register-{CLASS}-{dt.date.today()}-{period}.csv"
        )
        exported = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
        assert {r["student_id"]: r["status"] for r in exported} == {
            JOLIE: "present",
            SEINFELD: "late",
        }
        audit = api(api_url, "GET", "/api/v1/audit").json()["entries"]
        assert (audit[0]["action"], audit[0]["target"]) == ("export_register", CLASS)
        full_screenshot(page, "register-signed-off-1280x900")

        # The Attendance page shows the same register, every student.
        open_session_on_attendance(page, app_url, period)
        rows = shown_rows(page)
        assert "Jerry Seinfeld" in rows[0] and "Late" in rows[0], rows
        assert "Angelina Jolie" in rows[1] and "Present" in rows[1], rows
        page.get_by_text("Signed off by admin on").wait_for()
        full_screenshot(page, "register-attendance-1280x900")
    finally:
        context.close()


def test_the_register_on_a_phone(browser, app_url, api_url, faces_dir, register_class):
    period = "P2"
    context, page = new_page(browser, "390x844")
    try:
        take_attendance(page, app_url, faces_dir, period)
        rows = shown_rows(page)
        assert [("Jerry Seinfeld" in r, "Angelina Jolie" in r) for r in rows] in (
            # Brad Pitt's face was learned as Seinfeld's by the test before, or not (alone).
            [(False, True), (True, False)],
            [(True, False), (False, True)],
        ), rows
        click_status(page, JOLIE, "Excused")
        page.get_by_text("Angelina Jolie: excused (was present)").wait_for()
        assert rows_by_id(the_register(api_url, period))[JOLIE]["status"] == "excused"
        full_screenshot(page, "register-take-attendance-390x844")

        open_session_on_attendance(page, app_url, period)
        rows = shown_rows(page)
        assert any("Angelina Jolie" in r and "Excused" in r for r in rows), rows
        full_screenshot(page, "register-attendance-390x844")
    finally:
        context.close()


# Streamlit's developer chrome, as its toolbar and main menu name it with client.toolbarMode
# "auto" on localhost; people using the app must see none of it.
DEVELOPER_CHROME = ("Deploy", "Rerun", "Auto rerun", "Clear cache", "Record screen", "Print")


@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_no_developer_chrome(browser, app_url, api_url, register_class, size):
    context, page = new_page(browser, size)
    try:
        page.goto(f"{app_url}/enroll")
        try:
            page.get_by_role("heading", name="Enroll", exact=True).wait_for()
        except Exception:
            screenshot(page, f"debug-chrome-{size}")
            raise
        settle(page)
        assert page.title() == "Classroom attendance"
        assert page.locator('[data-testid="stAppDeployButton"]').count() == 0
        assert page.get_by_role("button", name="Deploy").count() == 0
        # The uploaders say the limits that hold (the API's, for photos) and take HEIC.
        limits = page.locator('[data-testid="stFileUploaderDropzoneInstructions"]')
        assert limits.first.inner_text().startswith("50MB per file"), limits.all_inner_texts()
        if size == "1280x900":  # on a phone the sidebar is folded away and the list cut short
            assert "HEIC" in limits.first.inner_text()
            # The sidebar's API address opens something: the API's documentation page.
            link = page.locator('[data-testid="stSidebar"]').get_by_role("link", name=api_url)
            href = link.get_attribute("href")
            assert href == f"{api_url}/api/v1/docs"
            resp = requests.get(href, timeout=10)
            assert resp.status_code == 200 and "text/html" in resp.headers["Content-Type"]
        full_screenshot(page, f"chrome-enroll-{size}")
        page.locator('[data-testid="stMainMenu"]').click()
        menu = page.locator('[data-testid="stMainMenuList"]')
        menu.get_by_text("About", exact=True).wait_for()
        shown = menu.inner_text().splitlines()
        assert not set(DEVELOPER_CHROME) & set(shown), shown
        screenshot(page, f"chrome-menu-{size}")
    finally:
        context.close()


def test_a_heic_photo_from_a_phone_is_recognised(
    browser, app_url, api_url, faces_dir, register_class, tmp_path
):
    """img5.jpg (not one of her enrollment photos) as an iPhone writes it: HEIC, taken with the
    phone on its side (that it is decoded upright is checked in tests/unit/test_heic_photos.py;
    the face detector finds a sideways face too)."""
    heic = sideways_heic_of(faces_dir / "img5.jpg")
    today = dt.date.today().isoformat()
    resp = api(
        api_url,
        "POST",
        "/api/v1/recognitions",
        data={"class_id": CLASS, "date": today, "period": "heic-api"},
        files=[("photos", ("IMG_0005.HEIC", heic, "image/heic"))],
    )
    assert resp.status_code == 202, resp.text
    job = wait_for_job(api_url, resp.json()["status_url"])
    assert job["state"] == "succeeded", job
    register = rows_by_id(the_register(api_url, "heic-api"))
    assert (register[JOLIE]["status"], register[JOLIE]["source"]) == ("present", "face")
    assert register[SEINFELD]["status"] == "absent"

    # The same from a phone's browser: the uploader takes the .heic file.
    photo = tmp_path / "IMG_0005.HEIC"
    photo.write_bytes(heic)
    context, page = new_page(browser, "390x844")
    try:
        take_attendance(page, app_url, faces_dir, "heic", photo)
        rows = shown_rows(page)
        assert any("Angelina Jolie" in r and "Present" in r for r in rows), rows
        full_screenshot(page, "register-heic-390x844")
    finally:
        context.close()


def test_attendance_taken_with_the_camera(
    browser, app_url, api_url, faces_dir, register_class, tmp_path
):  # noqa: F811
    """Chromium's fake camera plays the class photo (couple.jpg, as Motion JPEG frames): the
    page's camera takes it, and the register marks Angelina Jolie present from it."""
    from PIL import Image

    from tests.e2e.test_browser import CHROMIUM, CHROMIUM_ARGS

    still = Image.open(faces_dir / "couple.jpg").convert("RGB")
    still = still.resize((1280, round(still.height * 1280 / still.width / 2) * 2))
    frame = io.BytesIO()
    still.save(frame, format="JPEG", quality=92)
    video = tmp_path / "class.mjpeg"
    video.write_bytes(frame.getvalue() * 30)
    camera_browser = browser.browser_type.launch(
        executable_path=str(CHROMIUM),
        headless=True,
        args=[
            *CHROMIUM_ARGS,
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={video}",
        ],
    )
    try:
        context = camera_browser.new_context(viewport=VIEWPORTS["390x844"], permissions=["camera"])
        page = context.new_page()
        page.set_default_timeout(60_000)
        open_take_attendance(page, app_url)
        page.get_by_text("Use the camera", exact=True).click()
        settle(page)
        page.get_by_role("textbox", name="Period").fill("camera")
        page.get_by_role("button", name="Take Photo").click()
        page.get_by_role("button", name="Clear photo").wait_for()
        screenshot(page, "take-attendance-camera-390x844")
        page.get_by_role("button", name="Take attendance").click()
        page.get_by_text(f"Register: {CLASS}, ").wait_for(timeout=JOB_TIMEOUT)
        settle(page)
        register = rows_by_id(the_register(api_url, "camera"))
        assert (register[JOLIE]["status"], register[JOLIE]["source"]) == ("present", "face")
        assert register[SEINFELD]["status"] == "absent"
        context.close()
    finally:
        camera_browser.close()
