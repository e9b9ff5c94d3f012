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
