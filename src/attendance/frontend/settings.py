"""The Streamlit app's own settings, read like the server's (prefix ``ATTENDANCE_``, ``.env``).

Only what the app uses: it talks to the API and to nothing else, so a store URL the app never
opens (ATTENDANCE_RECORDS_URL, ATTENDANCE_BLOB_STORE_URL) cannot stop it. The upload limits
should be the API's own (attendance.config.settings), which they are when both read one ``.env``.
"""

from __future__ import annotations

import urllib.parse

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_FLOWER_PORT = 5555


class FrontendSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ATTENDANCE_", env_file=".env", extra="ignore", frozen=True
    )

    # Where the API is; every call the app makes goes there.
    api_url: str = "http://127.0.0.1:5000"
    # The token a new browser session starts with, until someone logs in with another.
    api_token: str | None = None
    # Flower's port, where make run starts it (on 127.0.0.1).
    flower_port: int = DEFAULT_FLOWER_PORT
    # Where the Monitoring page sends a browser for Flower: the address as the browser reaches
    # it, which is not the app's server's. Empty: http://127.0.0.1:<flower_port>, which is right
    # only for a browser on the machine that runs the stack.
    flower_url: str = Field(default="", validate_default=True)

    # The API's upload limits: more photos than a request takes are sent as several requests.
    max_upload_mb: float = Field(default=50.0, gt=0)
    max_enroll_photos: int = Field(default=20, ge=1)
    max_recognition_photos: int = Field(default=50, ge=1)

    @field_validator("flower_url")
    @classmethod
    def _flower_url_or_the_local_one(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip()
        if not value:
            port = info.data.get("flower_port", DEFAULT_FLOWER_PORT)
            return f"http://127.0.0.1:{port}"
        parts = urllib.parse.urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// address, e.g. http://ops.school:5555")
        # The page shows the address to everyone who opens it; Flower asks for its own login.
        if parts.username or parts.password:
            raise ValueError("must not hold a user name or password (Flower asks for them)")
        return value.rstrip("/")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)
