"""Bearer-token access: every route needs a token unless it is marked public. A token is an
API token (for programs) or a login's session token (for people; attendance.services.accounts).

A view declares the least role it needs with ``@requires(Role.teacher)``; a view that declares
nothing needs ``admin``, so a route added without thought is closed rather than open.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import Flask, current_app, g, request

from attendance.domain.auth import Principal, Role, TokenRegistry
from attendance.domain.errors import AppError, ServiceUnavailable
from attendance.services.accounts import session_principal
from attendance.web.context import services
from attendance.web.errors import UNAVAILABLE_ERRORS

F = TypeVar("F", bound=Callable)
EXTENSION_KEY = "attendance_tokens"
# The attribute a view function carries its least role in (None: public).
ROLE_ATTRIBUTE = "required_role"


class Unauthorized(AppError):
    status = 401
    code = "unauthorized"


class Forbidden(AppError):
    status = 403
    code = "forbidden"


def requires(role: Role) -> Callable[[F], F]:
    def mark(view: F) -> F:
        setattr(view, ROLE_ATTRIBUTE, role)
        return view

    return mark


def public(view: F) -> F:
    setattr(view, ROLE_ATTRIBUTE, None)
    return view


def current_principal() -> Principal:
    return g.principal


def allowed_classes() -> frozenset[str] | None:
    """The classes the caller may see; None means every class."""
    return current_principal().classes


def check_class(class_id: str) -> None:
    if not current_principal().may_see_class(class_id):
        raise Forbidden(f"this token may not access class {class_id!r}", code="class_forbidden")


def _authenticate() -> None:
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    if view is None:
        return  # werkzeug answers 404/405 itself
    required = getattr(view, ROLE_ATTRIBUTE, Role.admin)
    if required is None:
        return
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("this route needs an 'Authorization: Bearer <token>' header")
    token = token.strip()
    principal = current_app.extensions[EXTENSION_KEY].authenticate(token)
    if principal is None:
        # Not an API token: a login's session, if Redis (where sessions live) answers.
        svc = services()
        try:
            found = session_principal(svc.records, svc.sessions, token)
        except UNAVAILABLE_ERRORS as exc:
            raise ServiceUnavailable(
                "logins are kept in Redis, which is unavailable; try again later"
            ) from exc
        if found is None:
            raise Unauthorized("the token is not valid (or the login has ended: log in again)")
        principal, g.session = found
        g.session_token = token
    if principal.role < required:
        raise Forbidden(f"the {principal.role.name} role may not do this; it needs {required.name}")
    g.principal = principal


def init_auth(app: Flask, registry: TokenRegistry) -> None:
    app.extensions[EXTENSION_KEY] = registry
    app.before_request(_authenticate)
