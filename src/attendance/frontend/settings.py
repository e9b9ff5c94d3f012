"""The Streamlit app's own settings, read like the server's (prefix ``ATTENDANCE_``, ``.env``).

Only what the app uses: it talks to the API and to nothing else, so a store URL the app never
opens (ATTENDANCE_RECORDS_URL, ATTENDANCE_BLOB_STORE_URL) cannot stop it. The upload limits
should be the API's own (attendance.config.settings), which they are when both read one ``.env``.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class FrontendSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ATTENDANCE_", env_file=".env", extra="ignore", frozen=True
    )

    # Where the API is; every call the app makes goes there.
    api_url: str = "http://127.0.0.1:5000"
    # The token a new browser session starts with, until someone logs in with another.
    api_token: str | None = None
    # The Monitoring page links to Flower on this port (on 127.0.0.1).
    flower_port: int = 5555

    # The API's upload limits: more photos than a request takes are sent as several requests.
    max_upload_mb: float = Field(default=50.0, gt=0)
    max_enroll_photos: int = Field(default=20, ge=1)
    max_recognition_photos: int = Field(default=50, ge=1)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)
