"""What people see of Streamlit itself: the app's own config (.streamlit/config.toml, read by
`streamlit run` from the checkout's root) hides the developer chrome, and the uploaders' size
limits are the ones that hold."""

from __future__ import annotations

import tomllib

from attendance.config.settings import Settings
from attendance.frontend import roster, ui
from attendance.frontend.settings import FrontendSettings
from tests.conftest import REPO

CONFIG = REPO / ".streamlit" / "config.toml"


def config() -> dict:
    return tomllib.loads(CONFIG.read_text())


def test_no_developer_chrome_for_people_using_the_app():
    # "auto" shows Deploy, Rerun and Clear cache to anyone on localhost, as `make run` serves it.
    assert config()["client"]["toolbarMode"] in ("minimal", "viewer")


def test_streamlit_lets_through_the_largest_file_an_uploader_takes():
    # Streamlit refuses any file over server.maxUploadSize before a widget's own limit applies.
    largest = max(roster.MAX_ZIP_MB, roster.MAX_ROSTER_MB, ui.photo_upload_mb(FrontendSettings()))
    assert config()["server"]["maxUploadSize"] == largest == roster.MAX_ZIP_MB


def test_photo_uploaders_say_the_api_limit(monkeypatch):
    monkeypatch.delenv("ATTENDANCE_MAX_UPLOAD_MB", raising=False)
    api = Settings(_env_file=None, REDIS_URL="redis://127.0.0.1:6379/15")
    assert ui.photo_upload_mb(FrontendSettings(_env_file=None)) == api.max_upload_mb == 50
    monkeypatch.setenv("ATTENDANCE_MAX_UPLOAD_MB", "20.5")
    assert ui.photo_upload_mb(FrontendSettings(_env_file=None)) == 20
