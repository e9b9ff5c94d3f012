"""Logging in with a username and password in headless Chromium: the login outlives a reload
and opens in a new tab, and logging out ends it in the API too; on a phone the page says where
the login is. The API (in this process) over real Redis and SQLite, the app under Streamlit."""

from __future__ import annotations

import os
import threading
import time

import pytest
import requests

from tests.conftest import stop_process
from tests.e2e.test_browser import (  # noqa: F401 (a fixture)
    PAGE_TIMEOUT,
    browser,
    screenshot,
    settle,
    start_streamlit,
)
from tests.fakes import settings_for

pytestmark = pytest.mark.redis

DB = 0  # of the tests' Redis server; no other suite uses it
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def login_app(browser, tmp_path_factory):  # noqa: F811
    from werkzeug.serving import make_server

    from attendance.domain.accounts import NewAccount
    from attendance.services.accounts import create_account
    from attendance.web.app import create_app
    from tests import redis_db

    root = tmp_path_factory.mktemp("login")
    url = redis_db.fresh_db(DB)
    settings = settings_for(root, redis_url=url)
    app = create_app(settings)
    records = app.extensions["attendance"].records
    create_account(
        records,
        NewAccount(username="ms-smith", password=PASSWORD, role="teacher", classes=["room-1"]),
        "test",
    )
    create_account(records, NewAccount(username="head", password=PASSWORD, role="admin"), "test")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="api", daemon=True)
    thread.start()
    api_url = f"http://127.0.0.1:{server.server_port}"
    with open(root / "streamlit.log", "ab") as log:
        proc, frontend = start_streamlit(api_url, dict(os.environ), log)
        yield api_url, frontend
        stop_process(proc)
    server.shutdown()
    thread.join(timeout=10)
    redis_db.flush(url)


def logged_in_as(page) -> None:
    page.locator('[data-testid="stSidebar"]').get_by_text("Logged in as").wait_for()


def opened(where, frontend: str, width: int = 1280, height: int = 900):
    """A new page of ``where`` (a browser or a context) showing the app."""
    page = where.new_page(**({"viewport": {"width": width, "height": height}} if width else {}))
    page.set_default_timeout(PAGE_TIMEOUT)
    page.goto(frontend)
    settle(page)
    return page


def kept_login(context) -> dict:
    """The login's cookie, once the page's script has set it."""
    for _ in range(100):
        kept = [c for c in context.cookies() if c["name"] == "attendance_session" and c["value"]]
        if kept:
            return kept[0]
        time.sleep(0.1)
    raise AssertionError("the login was not kept in a cookie")


def log_in(page, password: str, username: str = "ms-smith") -> None:
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_label("Username", exact=True).fill(username)
    sidebar.get_by_label("Password", exact=True).fill(password)
    sidebar.get_by_role("button", name="Log in", exact=True).click()


def test_a_login_outlives_a_reload_and_a_new_tab_and_logging_out_ends_it(browser, login_app):  # noqa: F811
    api_url, frontend = login_app
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = opened(context, frontend, width=0)
    log_in(page, PASSWORD)
    logged_in_as(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    assert "ms-smith" in sidebar.inner_text() and "teacher" in sidebar.inner_text()
    assert PASSWORD not in page.locator("body").inner_text()
    screenshot(page, "login-account-1280")
    cookie = kept_login(context)
    assert cookie["sameSite"] == "Strict"
    token = requests.utils.unquote(cookie["value"])
    who = requests.get(
        api_url + "/api/v1/sessions/current", headers={"Authorization": f"Bearer {token}"}
    )
    assert who.status_code == 200 and who.json()["name"] == "ms-smith"

    page.reload()
    settle(page)
    logged_in_as(page)  # the reload kept the login
    other = opened(context, frontend, width=0)
    logged_in_as(other)  # and so does a new tab
    other.close()

    page.locator('[data-testid="stSidebar"]').get_by_role("button", name="Log out").click()
    settle(page)
    page.locator('[data-testid="stSidebar"]').get_by_label("Username", exact=True).wait_for()
    ended = requests.get(
        api_url + "/api/v1/sessions/current", headers={"Authorization": f"Bearer {token}"}
    )
    assert ended.status_code == 401  # ended in the API, not only forgotten by the page
    page.reload()
    settle(page)
    page.locator('[data-testid="stSidebar"]').get_by_label("Username", exact=True).wait_for()
    assert not [c for c in context.cookies() if c["name"] == "attendance_session" and c["value"]]
    context.close()


def test_a_wrong_password_says_so(browser, login_app):  # noqa: F811
    _, frontend = login_app
    page = opened(browser, frontend)
    log_in(page, "not my password")
    page.locator('[data-testid="stSidebar"]').get_by_text("wrong username or password").wait_for()
    page.close()


def test_on_a_phone_the_page_says_where_the_login_is(browser, login_app):  # noqa: F811
    _, frontend = login_app
    page = opened(browser, frontend, 390, 844)
    page.get_by_text("open it with the arrow at the top left").wait_for()
    screenshot(page, "login-hint-390")
    page.close()


def test_the_accounts_page_on_a_desktop_and_a_phone(browser, login_app):  # noqa: F811
    """An admin's login, kept in the cookie, opens the Accounts page at either size."""
    _, frontend = login_app
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = opened(context, frontend, width=0)
    log_in(page, PASSWORD, "head")
    logged_in_as(page)
    kept_login(context)
    for width, height in ((1280, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.goto(frontend + "/accounts")
        settle(page)
        page.get_by_role("heading", name="Accounts", exact=True).wait_for()
        page.get_by_role("heading", name="Change an account").wait_for()
        screenshot(page, f"accounts-{width}x{height}")
    context.close()
