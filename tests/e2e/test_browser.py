"""The Streamlit app in a real browser: headless Chromium (Debian's) driven by Playwright.

Everything is live: the API (werkzeug, in a thread) over the ``stack`` fixture's Redis database
and stores, a real Celery worker running FaceNet, and ``streamlit run src/attendance/frontend/app.py`` in a
subprocess, each on a free port. The browser logs in as a person does: the admin token of
tests/tokens.py typed into the sidebar's password box. A screenshot of every page goes to
var/test-artifacts/screenshots/<page>.png (and of the login, login.png).

Skipped, saying why, when /usr/bin/chromium (``make browser`` installs it; ATTENDANCE_CHROMIUM
names another) or the playwright package is missing, or when the browser does not start.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from attendance.frontend.api_client import LOGIN_HINT, ApiClient
from tests import tokens
from tests.conftest import REPO, stop_process
from tests.consent import CONSENT_FORM
from tests.emulators import free_port

pytestmark = [
    pytest.mark.redis,
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.model,
    pytest.mark.timeout(600),
]

CHROMIUM = Path(os.environ.get("ATTENDANCE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = REPO / "var" / "test-artifacts" / "screenshots"
APP = REPO / "src" / "attendance" / "frontend" / "app.py"
JOLIE_PHOTOS = ["img2.jpg", "img4.jpg", "img5.jpg", "img6.jpg"]
VIEWPORT = {"width": 1440, "height": 1600}
# Milliseconds, as Playwright counts: a page's own API calls are quick, a recognition is not.
PAGE_TIMEOUT = 30_000
JOB_TIMEOUT = 180_000


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium, or a skip that says what is missing. Checked before any stack starts."""
    if not CHROMIUM.is_file():
        pytest.skip(
            f"browser tests need Chromium at {CHROMIUM} (`make browser` installs "
            "Debian's chromium; ATTENDANCE_CHROMIUM names another)"
        )
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        pytest.skip("browser tests need the playwright package (requirements/dev.txt)")
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
        except Error as exc:
            pytest.skip(f"Chromium at {CHROMIUM} did not start: {str(exc).splitlines()[0]}")
        yield chromium
        chromium.close()


def start_streamlit(
    api_url: str, env: dict, log, token: str | None = None
) -> tuple[subprocess.Popen, str]:
    """`streamlit run src/attendance/frontend/app.py` on a free port, pointed at ``api_url``, once it answers;
    with ATTENDANCE_API_TOKEN=``token``, or none (then people log in in the sidebar)."""
    port = free_port()
    env = {k: v for k, v in env.items() if k != "ATTENDANCE_API_TOKEN"}
    if token is not None:
        env["ATTENDANCE_API_TOKEN"] = token
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(APP),
            "--server.address",
            "127.0.0.1",
            "--server.port",
            str(port),
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
            "--server.fileWatcherType",
            "none",
        ],
        cwd=REPO,
        env={**env, "ATTENDANCE_API_URL": api_url},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"{url}/_stcore/health", timeout=1).ok:
                return proc, url
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_process(proc)
            raise AssertionError(f"streamlit did not start on {url} (see {log.name})")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def frontend_url(browser, stack, api_url):
    with open(stack.root / "streamlit.log", "ab") as log:
        proc, url = start_streamlit(api_url, stack.env, log)
        yield url
        stop_process(proc)


@pytest.fixture(scope="module")
def jolie_enrolled(api_url, faces_dir):
    api = ApiClient(api_url, token=tokens.ADMIN)
    photos = [(name, (faces_dir / name).read_bytes()) for name in JOLIE_PHOTOS]
    job = api.wait_for_job(
        api.enroll("jolie", "Angelina Jolie", "room-1", photos, consent=CONSENT_FORM).job_id,
        timeout=240,
    )
    assert job.state == "succeeded", job
    return job


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT)
    yield page
    context.close()


def settle(page) -> None:
    """Wait until Streamlit has finished running the page's script (no running indicator)."""
    page.wait_for_selector('[data-testid="stAppViewContainer"]')
    running = (
        '[data-testid="stStatusWidgetRunningIcon"], [data-testid="stStatusWidgetRunningManIcon"]'
    )
    page.wait_for_function(f"() => !document.querySelector('{running}')")
    page.wait_for_timeout(500)  # let the last deltas and charts paint


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in(page, token: str) -> None:
    """Type ``token`` into the sidebar's password box and press *Log in*."""
    sidebar = page.locator('[data-testid="stSidebar"]')
    box = sidebar.get_by_label("API token", exact=True)
    assert box.get_attribute("type") == "password"
    box.fill(token)
    sidebar.get_by_role("button", name="Log in with the token", exact=True).click()
    sidebar.get_by_text("Logged in as").wait_for()
    settle(page)


def open_page(page, link: str, heading: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=link, exact=True).click()
    page.get_by_role("heading", name=heading, exact=True).wait_for()
    settle(page)


def test_take_attendance_in_the_browser_then_every_page(
    page, frontend_url, jolie_enrolled, faces_dir
):
    page.goto(frontend_url)
    page.get_by_role("heading", name="Take attendance", exact=True).wait_for()
    # Nobody has logged in: the page says how, and the sidebar has the login form.
    page.get_by_text(LOGIN_HINT).wait_for()
    settle(page)
    screenshot(page, "login")
    log_in(page, tokens.ADMIN)
    # The token is never shown back (the form is gone; nothing on the page repeats it).
    assert tokens.ADMIN not in page.locator("body").inner_text()
    assert page.get_by_label("API token", exact=True).count() == 0
    assert page.get_by_text(LOGIN_HINT).count() == 0
    assert page.get_by_role("combobox", name="Class").input_value() == "room-1"

    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        str(faces_dir / "couple.jpg")
    )
    page.get_by_text("couple.jpg", exact=True).first.wait_for()
    page.get_by_role("button", name="Take attendance").click()

    page.get_by_text("Register: room-1, ").wait_for(timeout=JOB_TIMEOUT)
    settle(page)
    # The annotated photo, below the register (whose rows show the faces' crops).
    photo = page.locator('[data-testid="stImage"]').filter(has_text="couple.jpg:")
    image = photo.locator("img").first
    image.wait_for()
    assert image.evaluate("img => img.complete && img.naturalWidth > 0")
    caption = photo.locator('[data-testid="stImageCaption"]').first.inner_text()
    assert caption.startswith("couple.jpg: 1 recognised (green)"), caption
    # Described for screen readers, like every image on the page.
    assert image.get_attribute("alt").startswith("Class photo couple.jpg, ")
    alts = page.locator('[data-testid="stMain"] img').evaluate_all("els => els.map(e => e.alt)")
    assert all(alt.strip() for alt in alts), alts
    rows = page.locator('[class*="st-key-register-row-"]').all_inner_texts()
    assert len(rows) == 1 and "Angelina Jolie" in rows[0] and "Present" in rows[0], rows
    present = page.locator('[data-testid="stMetric"]').filter(has_text="Present")
    assert present.locator('[data-testid="stMetricValue"]').inner_text() == "1 of 1"
    screenshot(page, "take_attendance")

    open_page(page, "Attendance", "Attendance")
    page.get_by_text("1 record over 1 class day").wait_for()
    page.locator('[data-testid="stDataFrame"]').first.wait_for()
    # Both charts (rate per day, per student) are drawn.
    page.locator('[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg').nth(
        1
    ).wait_for()
    settle(page)
    screenshot(page, "attendance")

    open_page(page, "Enroll", "Enroll")
    page.get_by_role("tab", name="Whole class (CSV + zip)").wait_for()
    screenshot(page, "enroll")
    page.get_by_role("tab", name="Whole class (CSV + zip)").click()
    page.get_by_text("The roster may create classes that do not exist yet").wait_for()
    settle(page)
    screenshot(page, "enroll-class")

    open_page(page, "Students and model", "Students and model")
    page.get_by_text("Students it knows").wait_for()
    page.get_by_text("1 student, 4 face photos learned").wait_for()
    screenshot(page, "students")

    open_page(page, "Monitoring", "Monitoring")
    flower = page.get_by_role("link", name="Open Flower")
    assert flower.get_attribute("href") == "http://127.0.0.1:5555"
    page.get_by_text("Everything is working").wait_for()
    screenshot(page, "monitoring")

    for name in ("login", "take_attendance", "attendance", "enroll", "students", "monitoring"):
        assert (SCREENSHOTS / f"{name}.png").stat().st_size > 10_000, name

    # Logging out forgets the token: the pages ask to log in again.
    page.locator('[data-testid="stSidebar"]').get_by_role("button", name="Log out").click()
    page.get_by_label("API token", exact=True).wait_for()
    open_page(page, "Students and model", "Students and model")
    page.get_by_text(LOGIN_HINT).wait_for()


def test_the_app_says_when_the_api_is_down(browser, page, tmp_path):
    """No stack here: the app alone, pointed at a closed port, with a token from
    ATTENDANCE_API_TOKEN (so the pages get as far as calling the API), opened at /attendance."""
    api_url = f"http://127.0.0.1:{free_port()}"
    with open(tmp_path / "streamlit.log", "ab") as log:
        proc, url = start_streamlit(api_url, dict(os.environ), log, token=tokens.ADMIN)
        try:
            # A deep link is this server's first request: the page still comes with the app's
            # navigation and sidebar (API status, login), not on its own.
            page.goto(f"{url}/attendance")
            page.get_by_role("heading", name="Attendance", exact=True).wait_for()
            page.get_by_text(f"The API at {api_url} is not reachable").first.wait_for()
            settle(page)
            sidebar = page.locator('[data-testid="stSidebar"]')
            sidebar.get_by_text(f"API not reachable: {api_url}").wait_for()
            sidebar.get_by_text("Logged in (the token is checked once the API answers)").wait_for()
            assert sidebar.get_by_role("button", name="Log out").is_visible()
            nav = page.locator('[data-testid="stSidebarNav"]')
            assert nav.get_by_role("link", name="Take attendance", exact=True).is_visible()
            assert "Traceback" not in page.locator("body").inner_text()
            screenshot(page, "api_down")
        finally:
            stop_process(proc)
