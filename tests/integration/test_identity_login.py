"""Logging in through the school's identity provider: a real OpenID Connect provider on a
loopback port (oidc-provider-mock) signs the ID token through the authorization-code flow, and
the API (Flask's test client over real Redis and SQLite) makes a session of the account with
that email, or refuses."""

from __future__ import annotations

import secrets
import urllib.parse

import pytest
import requests

from attendance.config.settings import OidcProvider
from attendance.web.app import create_app
from tests import redis_db, tokens

pytestmark = pytest.mark.redis

DB = 12  # shared with test_auth.py and test_accounts.py, never at once
CLIENT = "attendance-app"
REDIRECT = "http://127.0.0.1:9/oauth2callback"  # never opened: the code is read off the redirect


@pytest.fixture(scope="module")
def provider():
    import oidc_provider_mock

    with oidc_provider_mock.run_server_in_thread() as server:
        yield f"http://localhost:{server.server_port}"


def id_token(provider: str, email: str | None, *, client: str = CLIENT, **claims) -> str:
    """The ID token the provider gives ``client`` for a person with ``email``, as a browser's
    login would get it: authorize, then the code for tokens."""
    sub = email or f"someone-{secrets.token_hex(4)}"
    user = {"email": email, **claims} if email else dict(claims)
    assert requests.put(f"{provider}/users/{urllib.parse.quote(sub)}", json=user).status_code == 204
    query = {
        "client_id": client,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "openid email profile",
        "state": secrets.token_hex(8),
        "nonce": secrets.token_hex(8),
    }
    authorized = requests.post(
        f"{provider}/oauth2/authorize?{urllib.parse.urlencode(query)}",
        data={"sub": sub},
        allow_redirects=False,
    )
    location = urllib.parse.urlsplit(authorized.headers["location"])
    code = urllib.parse.parse_qs(location.query)["code"][0]
    issued = requests.post(
        f"{provider}/oauth2/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
        auth=(client, "any secret"),
    )
    assert issued.status_code == 200, issued.text
    return issued.json()["id_token"]


@pytest.fixture
def env(tmp_path, provider):
    url = redis_db.fresh_db(DB)
    settings = tokens.api_settings(tmp_path, url).model_copy(
        update={
            "oidc_providers": {
                "school": OidcProvider(
                    server_metadata_url=f"{provider}/.well-known/openid-configuration",
                    client_id=CLIENT,
                )
            }
        }
    )
    client = create_app(settings).test_client()
    yield client
    redis_db.flush(url)


def admin(client, method: str, path: str, body=None):
    return client.open(path, method=method, json=body, headers=tokens.bearer(tokens.ADMIN))


def through(client, token: str, provider: str = "school"):
    return client.post("/api/v1/sessions", json={"provider": provider, "id_token": token})


def test_the_account_with_the_verified_email_logs_in_without_a_password(env, provider):
    made = admin(
        env,
        "POST",
        "/api/v1/accounts",
        {
            "username": "ms-smith",
            "email": "Ms.Smith@school.example",
            "role": "teacher",
            "classes": ["room-1"],
        },
    )
    assert made.status_code == 201, made.get_json()
    assert made.get_json()["email"] == "ms.smith@school.example"

    resp = through(env, id_token(provider, "ms.smith@school.example"))
    assert resp.status_code == 201, resp.get_json()
    session = resp.get_json()["token"]
    who = env.get("/api/v1/sessions/current", headers={"Authorization": f"Bearer {session}"})
    assert who.get_json()["name"] == "ms-smith" and who.get_json()["classes"] == ["room-1"]

    # no password was set: none logs in
    for password in ("", "correct horse battery"):
        assert env.post(
            "/api/v1/sessions", json={"username": "ms-smith", "password": password}
        ).status_code in (400, 401)


def test_a_token_for_another_app_an_unknown_email_or_a_disabled_account_is_refused(env, provider):
    assert (
        admin(
            env,
            "POST",
            "/api/v1/accounts",
            {"username": "mr-jones", "email": "jones@school.example", "role": "viewer"},
        ).status_code
        == 201
    )

    other_app = through(env, id_token(provider, "jones@school.example", client="another-app"))
    assert other_app.status_code == 401 and "aud" in other_app.get_json()["error"]["message"]

    stranger = through(env, id_token(provider, "stranger@elsewhere.example"))
    assert stranger.status_code == 401
    assert "ask an administrator" in stranger.get_json()["error"]["message"]

    unverified = through(env, id_token(provider, "jones@school.example", email_verified=False))
    assert unverified.status_code == 401

    no_email = through(env, id_token(provider, None))
    assert no_email.status_code == 401 and "no email" in no_email.get_json()["error"]["message"]

    token = id_token(provider, "jones@school.example")
    head, body, signature = token.split(".")
    forged = f"{head}.{body}.{signature[:-4]}AAAA"
    assert through(env, forged).status_code == 401

    assert admin(env, "PATCH", "/api/v1/accounts/mr-jones", {"disabled": True}).status_code == 200
    assert through(env, token).status_code == 401
    assert admin(env, "PATCH", "/api/v1/accounts/mr-jones", {"disabled": False}).status_code == 200
    assert through(env, token).status_code == 201


def test_an_unknown_provider_and_bad_bodies_say_what_is_wrong(env, provider):
    unknown = through(env, id_token(provider, "a@school.example"), provider="elsewhere")
    assert unknown.status_code == 401
    assert "no identity provider 'elsewhere'" in unknown.get_json()["error"]["message"]
    for body in (
        {"provider": "school"},
        {"provider": "school", "id_token": 5},
        {"provider": "school", "id_token": "x" * 20_000},
        {"provider": "school", "id_token": "x", "username": "ms-smith"},
    ):
        resp = env.post("/api/v1/sessions", json=body)
        assert resp.status_code in (400, 401), (body, resp.get_json())
        assert resp.get_json()["error"]["message"]


def test_one_email_belongs_to_one_account(env):
    body = {"username": "a-one", "email": "same@school.example", "role": "viewer"}
    assert admin(env, "POST", "/api/v1/accounts", body).status_code == 201
    taken = admin(env, "POST", "/api/v1/accounts", {**body, "username": "a-two"})
    assert taken.status_code == 409 and taken.get_json()["error"]["code"] == "email_taken"
    assert (
        admin(
            env,
            "POST",
            "/api/v1/accounts",
            {"username": "a-two", "password": "correct horse battery", "role": "viewer"},
        ).status_code
        == 201
    )
    moved = admin(env, "PATCH", "/api/v1/accounts/a-two", {"email": "same@school.example"})
    assert moved.status_code == 409
    neither = admin(env, "POST", "/api/v1/accounts", {"username": "a-three", "role": "viewer"})
    assert neither.status_code == 400 and "password" in neither.get_json()["error"]["message"]
    bad = admin(
        env,
        "POST",
        "/api/v1/accounts",
        {"username": "a-four", "email": "not an email", "role": "viewer"},
    )
    assert bad.status_code == 400
    cleared = admin(env, "PATCH", "/api/v1/accounts/a-one", {"email": ""})
    assert cleared.status_code == 200 and cleared.get_json()["email"] is None
