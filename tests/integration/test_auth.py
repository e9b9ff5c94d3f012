"""Access: bearer tokens with roles; teachers limited to their classes; open health probes."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from PIL import Image

from attendance.domain.auth import TokenRegistry, add_token, hash_token
from attendance.domain.schemas import AttendanceRecord
from attendance.stores.records import open_records
from attendance.web.app import create_app
from tests import redis_db, tokens

DB = 12


@pytest.fixture
def app(tmp_path):
    url = redis_db.fresh_db(DB)
    settings = tokens.api_settings(tmp_path, url)
    records = open_records(settings.records_url)
    for sid, cls in (("ann", "room-1"), ("bob", "room-2")):
        records.upsert_student(sid, sid.title(), cls)
        records.mark_present(
            AttendanceRecord(
                class_id=cls,
                date=dt.date(2026, 11, 2),
                student_id=sid,
                name=sid.title(),
                first_seen_at=dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC),
                distance=0.2,
            )
        )
    yield create_app(settings)
    redis_db.flush(url)


def photo() -> tuple[io.BytesIO, str]:
    out = io.BytesIO()
    Image.new("RGB", (64, 64)).save(out, format="PNG")
    out.seek(0)
    return out, "p.png"


def test_health_probes_and_spec_are_open(app):
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code in (200, 503)
    spec = client.get("/api/v1/openapi.json")
    assert spec.status_code == 200
    assert spec.get_json()["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": f"Bearer {hash_token(tokens.ADMIN)}"},  # the stored hash is no token
    ],
)
def test_missing_or_wrong_token_is_401(app, headers):
    resp = app.test_client().get("/api/v1/students", headers=headers)
    assert resp.status_code == 401
    assert resp.get_json()["error"]["code"] == "unauthorized"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "method,path,least",
    [
        ("get", "/api/v1/attendance", "viewer"),
        ("get", "/api/v1/students", "teacher"),
        ("get", "/api/v1/model", "teacher"),
        ("get", "/api/v1/jobs/" + "0" * 32, "teacher"),
        ("post", "/api/v1/recognitions", "teacher"),
        ("post", "/api/v1/students", "admin"),
        ("post", "/api/v1/model/reembed", "admin"),
        ("delete", "/api/v1/students/ann", "admin"),
        ("get", "/api/v1/audit", "admin"),
    ],
)
def test_each_route_needs_its_role(app, method, path, least):
    client = app.test_client()
    order = ["viewer", "teacher", "admin"]
    token = {"viewer": tokens.VIEWER, "teacher": tokens.TEACHER, "admin": tokens.ADMIN}
    for role in order:
        resp = getattr(client, method)(path, headers=tokens.bearer(token[role]))
        if order.index(role) < order.index(least):
            assert resp.status_code == 403, (role, resp.get_json())
            assert resp.get_json()["error"]["code"] == "forbidden"
            assert least in resp.get_json()["error"]["message"]
        else:
            assert resp.status_code not in (401, 403), (role, resp.get_json())


def test_teacher_limited_to_their_classes(app):
    client = app.test_client()
    auth = tokens.bearer(tokens.ROOM1_TEACHER)
    got = client.get("/api/v1/attendance", headers=auth).get_json()["records"]
    assert [r["student_id"] for r in got] == ["ann"]
    resp = client.get("/api/v1/attendance?class_id=room-2", headers=auth)
    assert resp.status_code == 403 and resp.get_json()["error"]["code"] == "class_forbidden"
    students = client.get("/api/v1/students", headers=auth).get_json()["students"]
    assert [s["student_id"] for s in students] == ["ann"]
    assert client.get("/api/v1/students/bob", headers=auth).status_code == 404
    resp = client.post(
        "/api/v1/recognitions",
        headers=auth,
        content_type="multipart/form-data",
        data={"class_id": "room-2", "photos": [photo()]},
    )
    assert resp.status_code == 403
    # Unrestricted teachers see every class.
    got = client.get("/api/v1/attendance", headers=tokens.bearer(tokens.TEACHER)).get_json()
    assert len(got["records"]) == 2


def test_tokens_file_stores_only_hashes(tmp_path):
    path = tmp_path / "tokens.json"
    token = add_token(path, "office", "admin")
    text = path.read_text()
    assert token not in text and hash_token(token) in text
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    registry = TokenRegistry.load(None, path)
    assert registry.authenticate(token).role.name == "admin"
    assert registry.authenticate(token + "x") is None
    with pytest.raises(ValueError):
        add_token(path, "office", "viewer")
    entries = json.loads(text)
    assert entries[0]["name"] == "office" and entries[0]["classes"] is None


def test_a_token_created_or_revoked_on_the_command_line_counts_at_once(app, tmp_path):
    """The running API, the real command (a process of its own) on the same tokens file."""
    import os
    import subprocess
    import sys

    client = app.test_client()
    env = {**os.environ, "ATTENDANCE_API_TOKENS_FILE": str(tmp_path / "tokens.json")}

    def tokens_cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "attendance.cli.tokens", *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    def students(token: str) -> int:
        headers = {"Authorization": f"Bearer {token}"}
        return client.get("/api/v1/students", headers=headers).status_code

    created = tokens_cli("create", "ms-smith", "teacher", "--classes", "room-1")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert students(token) == 200  # no restart
    listed = tokens_cli("list").stdout
    assert "ms-smith\tteacher\troom-1" in listed and token not in listed

    assert tokens_cli("revoke", "ms-smith").returncode == 0
    assert students(token) == 401
    again = tokens_cli("revoke", "ms-smith")
    assert again.returncode == 1 and "no token named 'ms-smith'" in again.stderr


def test_a_tokens_file_that_cannot_be_read_admits_none_of_its_tokens(tmp_path):
    path = tmp_path / "tokens.json"
    token = add_token(path, "office", "admin")
    registry = TokenRegistry.load(tokens.TOKENS_JSON, path)
    assert registry.authenticate(token) is not None
    path.write_text("[{not json")
    assert registry.authenticate(token) is None
    assert registry.authenticate(tokens.ADMIN) is not None  # the inline ones stay
