"""Logins and accounts: POST /api/v1/sessions logs a person in (with a password, or with the ID
token of the school's identity provider); admins manage the accounts.

A login answers a session token, which the person's client sends as its bearer token until it
expires (ATTENDANCE_SESSION_HOURS) or they log out. API tokens (attendance-tokens) stay for
programs.
"""

from __future__ import annotations

from typing import TypeVar

from flask import Blueprint, g, jsonify, request
from pydantic import BaseModel, ValidationError

from attendance.domain.accounts import (
    Account,
    AccountChange,
    AccountView,
    IdentityLogin,
    Login,
    NewAccount,
)
from attendance.domain.api_shapes import (
    AccountChangeRequest,
    AccountList,
    LoginSession,
    NewAccountRequest,
    Whoami,
)
from attendance.domain.auth import Role
from attendance.domain.errors import AppError, NotFound
from attendance.services.accounts import (
    change_account,
    create_account,
    log_in,
    log_in_with_identity,
)
from attendance.web.apidoc import NOT_JSON, Reply, operation
from attendance.web.auth import current_principal, public, requires
from attendance.web.context import services
from attendance.web.forms import invalid_request, json_object

bp = Blueprint("accounts", __name__, url_prefix="/api/v1")
M = TypeVar("M", bound=BaseModel)


LOGIN_EXAMPLE = (
    '{"username": "...", "password": "..."} or, through the identity provider, '
    '{"provider": "google", "id_token": "..."}'
)


def _body(model: type[M], example: str) -> M:
    return _validated(model, json_object(request, f"{request.method} {request.path}", example))


def _validated(model: type[M], body: object) -> M:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise invalid_request(exc) from None


def _public(account: Account) -> AccountView:
    return AccountView.model_validate(account.public())


def _view(account: Account) -> dict:
    return _public(account).model_dump(mode="json")


@bp.post("/sessions")
@public
@operation(
    "logIn",
    "Log in with a username and password, or with the ID token of the school's identity "
    "provider: a session token to send as the bearer token until it expires or is ended.",
    body=(Login, IdentityLogin),
    replies={201: Reply("Logged in.", LoginSession)},
    errors={
        400: "A missing or unknown field.",
        401: "Wrong username or password, or the account is disabled (login_failed).",
        **NOT_JSON,
        429: "Too many failed logins for this username lately (too_many_logins).",
    },
)
def create_session():
    body = json_object(request, "POST /api/v1/sessions", LOGIN_EXAMPLE)
    svc = services()
    if "id_token" in body:
        through = _validated(IdentityLogin, body)
        identity = svc.identity.verify(through.provider, through.id_token)
        token, session, account = log_in_with_identity(svc.records, svc.sessions, identity)
    else:
        login = _validated(Login, body)
        token, session, account = log_in(svc.records, svc.sessions, login.username, login.password)
    answer = LoginSession(
        token=token,
        expires_at=session.expires_at,
        account=_public(account),
    )
    response = jsonify(answer.model_dump(mode="json"))
    response.status_code = 201
    return response


@bp.get("/sessions/current")
@requires(Role.viewer)
@operation(
    "whoami",
    "Who the bearer token is: their name, role and classes.",
    replies={200: Reply("Who.", Whoami)},
)
def current_session():
    who = current_principal()
    session = g.get("session")
    answer = Whoami(
        name=who.name,
        role=who.role.name,
        classes=sorted(who.classes) if who.classes is not None else None,
        kind="login" if session is not None else "api_token",
        expires_at=session.expires_at if session is not None else None,
    )
    return jsonify(answer.model_dump(mode="json"))


@bp.delete("/sessions/current")
@requires(Role.viewer)
@operation(
    "logOut",
    "End this login's session.",
    replies={204: Reply("Ended.")},
    errors={409: "An API token, not a login (not_a_login)."},
)
def end_session():
    token = g.get("session_token")
    if token is None:
        raise AppError(
            "this is an API token, not a login: revoke it with attendance-tokens revoke",
            code="not_a_login",
            status=409,
        )
    services().sessions.end(token)
    return "", 204


@bp.get("/accounts")
@requires(Role.admin)
@operation("listAccounts", "Every account (admin).", replies={200: Reply("Accounts.", AccountList)})
def list_accounts():
    answer = AccountList(accounts=[_public(a) for a in services().records.list_accounts()])
    return jsonify(answer.model_dump(mode="json"))


@bp.post("/accounts")
@requires(Role.admin)
@operation(
    "createAccount",
    "Create an account (admin; audited).",
    body=NewAccountRequest,
    replies={201: Reply("Created.", AccountView)},
    errors={
        400: "An invalid username, password, role or class.",
        409: "The username is taken (account_exists).",
        **NOT_JSON,
    },
)
def add_account():
    wanted = _body(
        NewAccount,
        '{"username": "ms-smith", "password": "...", "role": "teacher", "classes": ["room-1"]}',
    )
    account = create_account(services().records, wanted, current_principal().name)
    response = jsonify(_view(account))
    response.status_code = 201
    return response


@bp.patch("/accounts/<username>")
@requires(Role.admin)
@operation(
    "changeAccount",
    "Change an account's role or classes, disable or enable it, or set a new password (admin; "
    "audited). Disabling it or a new password ends its sessions.",
    body=AccountChangeRequest,
    replies={200: Reply("Changed.", AccountView)},
    errors={
        400: "An invalid field.",
        404: "No such account (account_not_found).",
        409: "The last admin who can log in cannot go (last_admin).",
        **NOT_JSON,
    },
)
def patch_account(username: str):
    change = _body(AccountChange, '{"disabled": true} or {"password": "..."}')
    svc = services()
    if svc.records.get_account(username) is None:
        raise NotFound(f"no account {username!r}", code="account_not_found")
    account = change_account(svc.records, svc.sessions, username, change, current_principal().name)
    return jsonify(_view(account))
