"""API tokens the tests use: one per role, and a teacher limited to one class."""

from __future__ import annotations

import json

from attendance.domain.auth import hash_token

ADMIN = "test-admin-token"
TEACHER = "test-teacher-token"
ROOM1_TEACHER = "test-room-1-teacher-token"
VIEWER = "test-viewer-token"

TOKENS_JSON = json.dumps(
    [
        {"name": "admin", "role": "admin", "sha256": hash_token(ADMIN)},
        {"name": "teacher", "role": "teacher", "sha256": hash_token(TEACHER)},
        {
            "name": "room-1",
            "role": "teacher",
            "sha256": hash_token(ROOM1_TEACHER),
            "classes": ["room-1"],
        },
        {"name": "viewer", "role": "viewer", "sha256": hash_token(VIEWER)},
    ]
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def as_admin(client):
    """Make every request of a Flask test client carry the admin token."""
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {ADMIN}"
    return client


def api_settings(tmp_path, redis_url: str):
    """Settings for an API on local stores in ``tmp_path`` that knows these tokens (and no
    tokens file, nor .env)."""
    from attendance.config.settings import Settings

    return Settings(
        _env_file=None,
        REDIS_URL=redis_url,
        blob_store_url=f"file://{tmp_path}/store",
        records_url=f"sqlite:///{tmp_path}/db.sqlite",
        api_tokens=TOKENS_JSON,
        api_tokens_file=tmp_path / "tokens.json",
    )
