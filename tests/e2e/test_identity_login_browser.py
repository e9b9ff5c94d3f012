"""Logging in through the school's identity provider in headless Chromium: the app's button
(Streamlit's st.login) goes to a real OpenID Connect provider on a loopback port
(oidc-provider-mock), which sends the browser back with a code; the API turns the ID token into
a session of the account with that email. The login outlives a reload; logging out ends it."""

from __future__ import annotations

import os
import secrets
import threading
import urllib.parse

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

DB = 0  # shared with test_login_browser.py, never at once
CLIENT = "attendance-app"


@pytest.fixture(scope="module")
def provider():
    import oidc_provider_mock

    with oidc_provider_mock.run_server_in_thread() as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture(scope="module")
def school_app(browser, provider, tmp_path_factory):  # noqa: F811
    from werkzeug.serving import make_server

    from attendance.config.settings import OidcProvider
    from attendance.domain.accounts import NewAccount
    from attendance.services.accounts import create_account
    from attendance.web.app import create_app
    from tests import redis_db

    root = tmp_path_factory.mktemp("school-login")
    url = redis_db.fresh_db(DB)
    metadata = f"{provider}/.well-known/openid-configuration"
    settings = settings_for(
        root,
        redis_url=url,
        oidc_providers={"school": OidcProvider(server_metadata_url=metadata, client_id=CLIENT)},
    )
    app = create_app(settings)
    create_account(
        app.extensions["attendance"].records,
        NewAccount(
            username="ms-smith", email="smith@school.example", role="teacher", classes=["room-1"]
        ),
        "test",
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="api", daemon=True)
    thread.start()
    api_url = f"http://127.0.0.1:{server.server_port}"
    # The app's secrets, as a school writes them (README, "Logging in through the school").
    secrets_file = root / "secrets.toml"
    secrets_file.write_text(
        "[auth]\n"
        'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_hex(32)}"\n'
        'expose_tokens = ["id"]\n'
        "[auth.school]\n"
        f'client_id = "{CLIENT}"\n'
        'client_secret = "a secret the provider shares with the app"\n'
        f'server_metadata_url = "{metadata}"\n'
    )
    env = {**os.environ, "STREAMLIT_SECRETS_FILES": str(secrets_file)}
    with open(root / "streamlit.log", "ab") as log:
        proc, frontend = start_streamlit(api_url, env, log)
        yield api_url, frontend, provider
        stop_process(proc)
    server.shutdown()
    thread.join(timeout=10)
    redis_db.flush(url)


def open_sidebar(page) -> None:
    """On a phone the sidebar starts closed: open it with the arrow at the top left."""
    expand = page.locator('[data-testid="stExpandSidebarButton"]')
    if expand.is_visible():
        expand.click()
    page.locator('[data-testid="stSidebar"]').get_by_role("button").first.wait_for()


def sign_in_at_the_provider(page, provider: str, email: str) -> None:
    """What the person does at the provider's page: who they are, then Authorize."""
    quoted = urllib.parse.quote(email)
    assert requests.put(f"{provider}/users/{quoted}", json={"email": email}).status_code == 204
    page.get_by_placeholder("sub").wait_for()
    assert page.url.startswith(provider)
    page.get_by_placeholder("sub").fill(email)
    page.get_by_role("button", name="Authorize").click()


@pytest.mark.parametrize("width, height", [(1280, 900), (390, 844)])
def test_a_teacher_logs_in_with_the_school_account_and_stays_logged_in(
    browser,  # noqa: F811
    school_app,
    width,
    height,
):
    api_url, frontend, provider = school_app
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT)
    page.goto(frontend)
    settle(page)
    if width < 640:  # on a phone the sidebar starts closed: the page says where the login is
        page.get_by_text("open it with the arrow at the top left").wait_for()
    open_sidebar(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    button = sidebar.get_by_role("button", name="Log in with School")
    button.wait_for()
    screenshot(page, f"login-school-{width}x{height}")
    button.click()
    sign_in_at_the_provider(page, provider, "smith@school.example")

    page.wait_for_url(f"{frontend}/**")
    settle(page)
    open_sidebar(page)
    sidebar.get_by_text("Logged in as").wait_for()
    assert "ms-smith" in sidebar.inner_text() and "teacher" in sidebar.inner_text()
    screenshot(page, f"logged-in-school-{width}x{height}")
    kept = [c for c in context.cookies() if c["name"] == "attendance_session" and c["value"]]
    assert kept, "the API session was not kept for reloads"
    token = urllib.parse.unquote(kept[0]["value"])
    who = requests.get(
        api_url + "/api/v1/sessions/current", headers={"Authorization": f"Bearer {token}"}
    )
    assert who.json()["name"] == "ms-smith" and who.json()["kind"] == "login"

    page.reload()
    settle(page)
    open_sidebar(page)
    sidebar.get_by_text("Logged in as").wait_for()

    sidebar.get_by_role("button", name="Log out").click()
    # The provider's own sign-out (its end_session_endpoint), then back to the app.
    page.get_by_role("button", name="End session").click()
    page.wait_for_url(f"{frontend}/**")
    settle(page)
    ended = requests.get(
        api_url + "/api/v1/sessions/current", headers={"Authorization": f"Bearer {token}"}
    )
    assert ended.status_code == 401
    page.goto(frontend)
    settle(page)
    open_sidebar(page)
    sidebar.get_by_role("button", name="Log in with School").wait_for()
    assert "Logged in as" not in sidebar.inner_text()
    context.close()


def test_a_person_the_school_knows_but_the_app_does_not_is_told_so(browser, school_app):  # noqa: F811
    _, frontend, provider = school_app
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT)
    page.goto(frontend)
    settle(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_role("button", name="Log in with School").click()
    sign_in_at_the_provider(page, provider, "stranger@school.example")
    page.wait_for_url(f"{frontend}/**")
    settle(page)
    sidebar.get_by_text("no account that can log in has the email").wait_for()
    assert "Logged in as" not in sidebar.inner_text()
    context.close()
