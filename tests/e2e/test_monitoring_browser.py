"""The Monitoring page in a real browser (headless Chromium driven by Playwright), against the
live stack of tests/e2e/test_browser.py: the health summary in words, the API's own checks
behind an expander, the Flower link at the address of ATTENDANCE_FLOWER_URL, and the sidebar's
API link opening the API's documentation page; screenshots at 1280x900 and 390x844."""

from __future__ import annotations

import time

import pytest
import requests

from tests import tokens
from tests.conftest import stop_process
from tests.e2e.test_browser import browser, settle, start_streamlit  # noqa: F401 (a fixture)
from tests.e2e.test_enroll_browser import VIEWPORTS, full_screenshot, new_page

pytestmark = [
    pytest.mark.redis,
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.model,
    pytest.mark.timeout(600),
]

FLOWER_URL = "https://flower.school.example:5555"


@pytest.fixture(scope="module")
def monitoring_url(browser, stack, api_url):  # noqa: F811 (browser is the imported fixture)
    env = {**stack.env, "ATTENDANCE_FLOWER_URL": FLOWER_URL}
    with open(stack.root / "streamlit-monitoring.log", "ab") as log:
        proc, url = start_streamlit(api_url, env, log, token=tokens.ADMIN)
        yield url
        stop_process(proc)


@pytest.fixture(scope="module")
def ready(api_url):
    """Until the module's worker answers (it loads its model first)."""
    deadline = time.monotonic() + 180
    while requests.get(f"{api_url}/readyz", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "the worker never answered /readyz"
        time.sleep(1)


@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_the_monitoring_page_in_words(browser, monitoring_url, api_url, ready, size):  # noqa: F811
    context, page = new_page(browser, size)
    try:
        page.goto(f"{monitoring_url}/monitoring")
        page.get_by_role("heading", name="Monitoring", exact=True).wait_for()
        page.get_by_text("Everything is working").wait_for()
        settle(page)
        main = page.locator('[data-testid="stMain"]')
        shown = main.inner_text()
        for line in (
            "Working · The API: it answers",
            "Working · The job queue (Redis)",
            "Working · The photo store",
            "Working · The workers, which read the photos: 1 worker answers",
            "Working · The face model: it recognises",
        ):
            assert line in " ".join(shown.split()), (line, shown)
        # Each status has its icon (a Material symbol, drawn from its name) as well as its word.
        assert shown.count("check_circle") >= 6, shown
        flower = page.get_by_role("link", name="Open Flower")
        assert flower.get_attribute("href") == FLOWER_URL
        assert "var/flower-credentials" in shown and "FLOWER_BASIC_AUTH" in shown
        # The raw checks, one click away.
        assert page.get_by_text("blob_store", exact=True).count() == 0
        page.get_by_text("The API's own checks (GET /readyz)").click()
        page.locator('[data-testid="stDataFrame"]').first.wait_for()
        settle(page)
        if size == "1280x900":  # on a phone the sidebar is folded away
            link = page.locator('[data-testid="stSidebar"]').get_by_role("link", name=api_url)
            href = link.get_attribute("href")
            assert href == f"{api_url}/api/v1/docs"
            resp = requests.get(href, timeout=10)
            assert resp.status_code == 200 and "text/html" in resp.headers["Content-Type"]
        full_screenshot(page, f"monitoring-{size}")
    finally:
        context.close()
