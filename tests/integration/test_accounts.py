"""Accounts and logins through the API (Flask's test client over real Redis and SQLite), and
the command line on the same stores."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest

from attendance.services.accounts import MAX_FAILED_LOGINS
from attendance.web.app import create_app
from tests import redis_db, tokens

pytestmark = pytest.mark.redis

DB = 12  # shared with test_auth.py, never at once
PASSWORD = "correct horse battery"


@pytest.fixture
def env(tmp_path):
    url = redis_db.fresh_db(DB)
    settings = tokens.api_settings(tmp_path, url)
    yield create_app(settings).test_client(), settings, tmp_path
    redis_db.flush(url)


def admin(client, method: str, path: str, body=None):
    return client.open(path, method=method, json=body, headers=tokens.bearer(tokens.ADMIN))


def login(client, username: str, password: str = PASSWORD):
    return client.post("/api/v1/sessions", json={"username": username, "password": password})


def as_(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def make(client, username: str, role: str = "teacher", **extra):
    body = {"username": username, "password": PASSWORD, "role": role, **extra}
    resp = admin(client, "POST", "/api/v1/accounts", body)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def test_a_teacher_logs_in_sees_who_they_are_and_logs_out(env):
    client, _, tmp_path = env
    made = make(client, "ms-smith", classes=["room-1"])
    assert made["classes"] == ["room-1"] and "password" not in str(made)

    resp = login(client, "ms-smith")
    assert resp.status_code == 201, resp.get_json()
    token = resp.get_json()["token"]
    who = client.get("/api/v1/sessions/current", headers=as_(token)).get_json()
    assert who == {
        "name": "ms-smith",
        "role": "teacher",
        "classes": ["room-1"],
        "kind": "login",
        "expires_at": resp.get_json()["expires_at"],
    }
    assert client.get("/api/v1/students", headers=as_(token)).status_code == 200
    assert client.get("/api/v1/accounts", headers=as_(token)).status_code == 403
    assert client.get("/api/v1/attendance?class_id=room-2", headers=as_(token)).status_code == 403

    assert client.delete("/api/v1/sessions/current", headers=as_(token)).status_code == 204
    assert client.get("/api/v1/students", headers=as_(token)).status_code == 401
    # Only the password's Argon2id hash is stored.
    with sqlite3.connect(tmp_path / "db.sqlite") as db:
        [(body,)] = db.execute("SELECT body FROM accounts").fetchall()
    assert PASSWORD not in body and "$argon2id$" in body


def test_a_wrong_password_an_unknown_user_and_a_disabled_account_get_the_same_answer(env):
    client, _, _ = env
    make(client, "ms-smith")
    wrong = login(client, "ms-smith", "not the password")
    unknown = login(client, "nobody", PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.get_json() == unknown.get_json()
    assert wrong.get_json()["error"]["code"] == "login_failed"
    admin(client, "PATCH", "/api/v1/accounts/ms-smith", {"disabled": True})
    disabled = login(client, "ms-smith")
    assert disabled.status_code == 401 and disabled.get_json() == wrong.get_json()


def test_too_many_failed_logins_lock_the_username_for_a_while(env):
    client, _, _ = env
    make(client, "ms-smith")
    for _ in range(MAX_FAILED_LOGINS):
        assert login(client, "ms-smith", "guess guess guess").status_code == 401
    locked = login(client, "ms-smith")  # even the right password, for the rest of the window
    assert locked.status_code == 429 and locked.get_json()["error"]["code"] == "too_many_logins"
    make(client, "mr-jones")
    assert login(client, "mr-jones").status_code == 201  # other accounts are not affected


def test_disabling_or_a_new_password_ends_the_sessions_and_a_role_change_counts_at_once(env):
    client, _, _ = env
    make(client, "ms-smith")
    first = login(client, "ms-smith").get_json()["token"]
    resp = admin(client, "PATCH", "/api/v1/accounts/ms-smith", {"role": "viewer"})
    assert resp.status_code == 200 and resp.get_json()["role"] == "viewer"
    who = client.get("/api/v1/sessions/current", headers=as_(first)).get_json()
    assert who["role"] == "viewer"  # the same session, its new role

    admin(client, "PATCH", "/api/v1/accounts/ms-smith", {"password": "a new long password"})
    assert client.get("/api/v1/students", headers=as_(first)).status_code == 401
    assert login(client, "ms-smith").status_code == 401
    second = login(client, "ms-smith", "a new long password").get_json()["token"]
    admin(client, "PATCH", "/api/v1/accounts/ms-smith", {"disabled": True})
    assert client.get("/api/v1/sessions/current", headers=as_(second)).status_code == 401
    admin(client, "PATCH", "/api/v1/accounts/ms-smith", {"disabled": False})
    assert login(client, "ms-smith", "a new long password").status_code == 201
    audit = admin(client, "GET", "/api/v1/audit").get_json()["entries"]
    assert [e["action"] for e in audit].count("change_account") == 4


def test_the_last_admin_who_can_log_in_stays(env):
    client, _, _ = env
    make(client, "head", role="admin")
    for change in ({"disabled": True}, {"role": "teacher"}):
        resp = admin(client, "PATCH", "/api/v1/accounts/head", change)
        assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "last_admin"
    make(client, "deputy", role="admin")
    assert admin(client, "PATCH", "/api/v1/accounts/head", {"disabled": True}).status_code == 200


@pytest.mark.parametrize(
    "body, field",
    [
        ({"username": "Ms Smith", "password": PASSWORD, "role": "teacher"}, "username"),
        ({"username": "../admin", "password": PASSWORD, "role": "teacher"}, "username"),
        ({"username": "ms-smith", "password": "short", "role": "teacher"}, "password"),
        ({"username": "ms-smith", "password": "line\nbreak here", "role": "teacher"}, "password"),
        ({"username": "ms-smith", "password": PASSWORD, "role": "root"}, "role"),
        ({"username": "ms-smith", "password": PASSWORD, "role": "teacher", "x": 1}, "x"),
        (
            {"username": "ms-smith", "password": PASSWORD, "role": "teacher", "classes": ["../"]},
            "classes",
        ),
    ],
)
def test_bad_accounts_are_refused_saying_what_is_wrong(env, body, field):
    client, _, _ = env
    resp = admin(client, "POST", "/api/v1/accounts", body)
    assert resp.status_code == 400, resp.get_json()
    assert field in resp.get_json()["error"]["message"]
    assert admin(client, "GET", "/api/v1/accounts").get_json()["accounts"] == []


def test_accounts_errors_are_clear(env):
    client, _, _ = env
    make(client, "ms-smith")
    again = admin(
        client,
        "POST",
        "/api/v1/accounts",
        {"username": "ms-smith", "password": PASSWORD, "role": "viewer"},
    )
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "account_exists"
    missing = admin(client, "PATCH", "/api/v1/accounts/nobody", {"disabled": True})
    assert missing.status_code == 404
    text = client.post("/api/v1/sessions", data="username=a", content_type="text/plain")
    assert text.status_code == 415
    token_logout = client.delete("/api/v1/sessions/current", headers=tokens.bearer(tokens.ADMIN))
    assert (
        token_logout.status_code == 409
        and token_logout.get_json()["error"]["code"] == "not_a_login"
    )


def test_the_command_line_manages_the_same_accounts(env):
    client, settings, tmp_path = env
    cli_env = {
        **os.environ,
        "ATTENDANCE_RECORDS_URL": settings.records_url,
        "REDIS_URL": settings.redis_url,
    }

    def accounts(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "attendance.cli.accounts", *args],
            input=stdin,
            env=cli_env,
            capture_output=True,
            text=True,
            check=False,
        )

    made = accounts(
        "create",
        "ms-smith",
        "teacher",
        "--classes",
        "room-1",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert made.returncode == 0, made.stderr
    token = login(client, "ms-smith").get_json()["token"]
    assert "ms-smith\tteacher\troom-1\tactive" in accounts("list").stdout
    assert accounts("disable", "ms-smith").returncode == 0
    assert client.get("/api/v1/students", headers=as_(token)).status_code == 401  # at once
    short = accounts("reset-password", "ms-smith", "--password-stdin", stdin="short\n")
    assert short.returncode == 1 and "password" in short.stderr
    assert (
        accounts(
            "create", "ms-smith", "viewer", "--password-stdin", stdin=PASSWORD + "\n"
        ).returncode
        == 1
    )
    # an identity-provider-only account, and an email set on an existing one
    sso = accounts(
        "create", "mr-jones", "viewer", "--email", "Jones@School.example", "--no-password"
    )
    assert sso.returncode == 0, sso.stderr
    assert "mr-jones\tviewer\tall classes\tactive\tjones@school.example" in accounts("list").stdout
    assert login(client, "mr-jones", "").status_code in (400, 401)
    assert accounts("set-email", "ms-smith", "jones@school.example").returncode == 1  # taken
    assert accounts("set-email", "ms-smith", "smith@school.example").returncode == 0
    assert "smith@school.example" in accounts("list").stdout
    bare = accounts("create", "no-way-in", "viewer", "--no-password")
    assert bare.returncode == 1 and "needs a password, or an email" in bare.stderr
    assert "Traceback" not in bare.stderr


@pytest.fixture
def api_url(env):
    """The same API over HTTP, for the app's page."""
    import threading

    from werkzeug.serving import make_server

    client, _, _ = env
    server = make_server("127.0.0.1", 0, client.application, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="api", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", client
    server.shutdown()
    thread.join(timeout=10)


def test_an_admin_manages_accounts_in_the_app(monkeypatch, api_url):
    from tests.integration.test_frontend_apptest import app_at, shown_text

    url, client = api_url
    at = app_at(monkeypatch, url, "views/accounts.py")
    assert "No account yet" in shown_text(at)
    at.text_input(key="accounts.new.username").input("Ms-Smith")
    at.selectbox(key="accounts.new.role").select("teacher")
    at.text_input(key="accounts.new.classes").input("room-2, room-1")
    at.text_input(key="accounts.new.password").input(PASSWORD)
    at.text_input(key="accounts.new.again").input(PASSWORD)
    at.button(key="FormSubmitter:accounts.new-Create the account").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Created ms-smith (teacher)" in shown_text(at)
    made = admin(client, "GET", "/api/v1/accounts").get_json()["accounts"]
    assert [(a["username"], a["classes"]) for a in made] == [("ms-smith", ["room-1", "room-2"])]
    assert login(client, "ms-smith").status_code == 201

    at.run()
    at.button(key="accounts.disable").click().run()
    assert "ms-smith was disabled." in shown_text(at)
    assert login(client, "ms-smith").status_code == 401
    at.button(key="accounts.enable").click().run()
    assert login(client, "ms-smith").status_code == 201

    at.text_input(key="accounts.change.email.ms-smith").input("Smith@School.example")
    at.button(key="FormSubmitter:accounts.email.ms-smith-Save the email").click().run()
    assert "ms-smith was changed." in shown_text(at)
    made = admin(client, "GET", "/api/v1/accounts").get_json()["accounts"]
    assert made[0]["email"] == "smith@school.example"

    # an account for the identity provider only: an email and no password
    at.text_input(key="accounts.new.username").input("mr-jones")
    at.selectbox(key="accounts.new.role").select("viewer")
    at.text_input(key="accounts.new.email").input("jones@school.example")
    at.button(key="FormSubmitter:accounts.new-Create the account").click().run()
    assert "Created mr-jones (viewer)" in shown_text(at)
    jones = admin(client, "GET", "/api/v1/accounts").get_json()["accounts"][0]
    assert (jones["username"], jones["email"]) == ("mr-jones", "jones@school.example")
    at.run()
    assert at.dataframe[0].value["email"].tolist() == [
        "jones@school.example",
        "smith@school.example",
    ]
