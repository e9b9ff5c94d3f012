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


def test_photo_uploaders_help_says_the_api_limit(monkeypatch):
    monkeypatch.setenv("ATTENDANCE_MAX_UPLOAD_MB", "20")
    assert "up to 20 MB" in ui.photo_upload_help(FrontendSettings(_env_file=None))


def _luminance(rgb: tuple[float, float, float]) -> float:
    def linear(v: float) -> float:
        v /= 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(v) for v in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(text: tuple[float, ...], background: tuple[float, ...]) -> float:
    lighter, darker = sorted((_luminance(text), _luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def test_captions_in_the_light_theme_reach_wcag_aa_contrast():
    # Streamlit draws captions (and other secondary text) in the text colour at 60 % opacity.
    hex_colour = config()["theme"]["light"]["textColor"].lstrip("#")
    text = tuple(int(hex_colour[i : i + 2], 16) for i in (0, 2, 4))
    white = (255.0, 255.0, 255.0)
    caption = tuple(0.6 * c + 0.4 * 255 for c in text)
    assert contrast(caption, white) >= 4.5
    # Streamlit's own grey would not.
    default = tuple(0.6 * c + 0.4 * 255 for c in (0x31, 0x33, 0x3F))
    assert contrast(default, white) < 4.5
