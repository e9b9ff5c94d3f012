"""The API's own page, /api/v1/docs, in headless Chromium with every request that does not go
to the API refused: it renders the document from the API alone, on a desktop and a phone."""

from __future__ import annotations

import threading
from urllib.parse import urlsplit

import pytest

from tests.e2e.test_browser import PAGE_TIMEOUT, browser, screenshot  # noqa: F401 (a fixture)
from tests.fakes import settings_for


@pytest.fixture(scope="module")
def docs_url(tmp_path_factory):
    from werkzeug.serving import make_server

    from attendance.web.app import create_app

    settings = settings_for(tmp_path_factory.mktemp("docs"))
    server = make_server("127.0.0.1", 0, create_app(settings), threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="api", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.mark.parametrize("size", [(1280, 900), (390, 844)], ids=["desktop", "phone"])
def test_the_api_page_renders_offline(browser, docs_url, size):  # noqa: F811
    page = browser.new_page(viewport={"width": size[0], "height": size[1]})
    elsewhere: list[str] = []

    def only_the_api(route) -> None:
        if urlsplit(route.request.url).netloc == urlsplit(docs_url).netloc:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_api)
    page.goto(docs_url + "/api/v1/docs", timeout=PAGE_TIMEOUT)
    page.get_by_text("Classroom attendance API", exact=False).first.wait_for(timeout=PAGE_TIMEOUT)
    page.locator(".opblock-summary-path", has_text="/api/v1/recognitions").first.wait_for(
        timeout=PAGE_TIMEOUT
    )
    assert page.locator(".opblock").count() > 20  # every operation is listed
    assert elsewhere == []  # nothing came from beyond the API
    screenshot(page, f"api-docs-{size[0]}")
    page.close()
