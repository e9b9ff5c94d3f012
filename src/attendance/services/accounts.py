"""Accounts and logins: create, change, disable and reset an account; log in and out.

Every change an admin makes is audited. A disabled account, or one given a new password,
loses its sessions at once; the last admin who can log in cannot be disabled or demoted.
"""

from __future__ import annotations

import datetime as dt

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from attendance.domain.accounts import USERNAME_RE, Account, AccountChange, NewAccount
from attendance.domain.auth import Principal
from attendance.domain.errors import AppError, NotFound
from attendance.domain.schemas import AuditEntry
from attendance.services.identity import Identity, IdentityRefused
from attendance.stores.records import RecordsStore
from attendance.stores.sessions import Session, SessionStore

# Failed logins of one username before it is refused for the rest of the window.
MAX_FAILED_LOGINS = 10
FAILURE_WINDOW_SECONDS = 15 * 60


class AccountExists(AppError):
    status = 409
    code = "account_exists"


class EmailTaken(AppError):
    status = 409
    code = "email_taken"


class LastAdmin(AppError):
    status = 409
    code = "last_admin"


class LoginRefused(AppError):
    status = 401
    code = "login_failed"


class TooManyLogins(AppError):
    status = 429
    code = "too_many_logins"


# Argon2id with argon2-cffi's default parameters (RFC 9106's second recommended option).
_HASHER = PasswordHasher()
# Verified against when the username is unknown, so that the answer takes as long as for a
# wrong password and does not say which usernames exist.
_DUMMY_HASH = _HASHER.hash("not a password of anyone's")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def password_matches(account: Account | None, password: str) -> bool:
    """Whether ``password`` is the account's; as slow for an unknown account (None) or one
    without a password."""
    known = account.password_hash if account and account.password_hash else None
    try:
        matched = _HASHER.verify(known or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    return matched and known is not None


def new_account(request: NewAccount, now: dt.datetime) -> Account:
    return Account(
        username=request.username,
        role=request.role,
        classes=request.classes,
        password_hash=hash_password(request.password) if request.password is not None else "",
        email=request.email,
        created_at=now,
        updated_at=now,
    )


def _audit(records: RecordsStore, actor: str, action: str, target: str, detail: dict) -> None:
    records.append_audit(
        AuditEntry(at=_now(), actor=actor, action=action, target=target, detail=detail)
    )


def _check_email_free(records: RecordsStore, email: str | None, username: str) -> None:
    if email is None:
        return
    for other in records.list_accounts():
        if other.email == email and other.username != username:
            raise EmailTaken(f"the account {other.username!r} has the email {email!r} already")


def create_account(records: RecordsStore, request: NewAccount, actor: str) -> Account:
    _check_email_free(records, request.email, request.username)
    account = new_account(request, _now())
    if not records.create_account(account):
        raise AccountExists(f"an account named {request.username!r} exists already")
    _audit(records, actor, "create_account", account.username, _described(account))
    return account


def _described(account: Account) -> dict:
    return {
        "role": account.role,
        "classes": account.classes,
        "disabled": account.disabled,
        "email": account.email,
    }


def change_account(
    records: RecordsStore,
    sessions: SessionStore | None,
    username: str,
    change: AccountChange,
    actor: str,
) -> Account:
    account = records.get_account(username)
    if account is None:
        raise NotFound(f"no account {username!r}", code="account_not_found")
    updated = account.model_copy()
    if change.role is not None:
        updated.role = change.role
    if change.all_classes:
        updated.classes = None
    elif change.classes is not None:
        updated.classes = change.classes
    if change.disabled is not None:
        updated.disabled = change.disabled
    if change.password is not None:
        updated.password_hash = hash_password(change.password)
    if change.email is not None:
        updated.email = change.email or None
        _check_email_free(records, updated.email, username)
    if (
        account.role == "admin"
        and not account.disabled
        and (updated.role != "admin" or updated.disabled)
    ):
        others = [
            a
            for a in records.list_accounts()
            if a.role == "admin" and not a.disabled and a.username != username
        ]
        if not others:
            raise LastAdmin(
                f"{username!r} is the last admin who can log in: make another admin first"
            )
    updated.updated_at = _now()
    records.put_account(updated)
    ended = 0
    if sessions is not None and (updated.disabled or change.password is not None):
        ended = sessions.end_all(username)
    detail = {**_described(updated), "password_reset": change.password is not None}
    _audit(records, actor, "change_account", username, {**detail, "sessions_ended": ended})
    return updated


def log_in(
    records: RecordsStore, sessions: SessionStore, username: str, password: str
) -> tuple[str, Session, Account]:
    """A new session for the account, if the password is its own; the same refusal for an
    unknown username, a wrong password or a disabled account."""
    if sessions.login_failures(username) >= MAX_FAILED_LOGINS:
        raise TooManyLogins(
            f"too many failed logins for {username!r}; try again in "
            f"{FAILURE_WINDOW_SECONDS // 60} minutes, or ask an admin to reset the password"
        )
    account = records.get_account(username) if USERNAME_RE.fullmatch(username) else None
    if not password_matches(account, password) or account is None or account.disabled:
        sessions.failed_login(username, FAILURE_WINDOW_SECONDS)
        raise LoginRefused("wrong username or password (or the account is disabled)")
    sessions.clear_failures(username)
    if _HASHER.check_needs_rehash(account.password_hash):  # parameters raised since it was set
        account.password_hash = hash_password(password)
        records.put_account(account)
    token, session = sessions.create(username, _now())
    return token, session, account


def log_in_with_identity(
    records: RecordsStore, sessions: SessionStore, identity: Identity
) -> tuple[str, Session, Account]:
    """A new session for the one account that can log in and has the email the identity
    provider verified."""
    matches = [a for a in records.list_accounts() if a.email == identity.email and not a.disabled]
    if len(matches) != 1:
        # Two accounts with one email can only come from a race between two admins: neither
        # is guessed at.
        raise IdentityRefused(
            f"no account that can log in has the email {identity.email!r}"
            + (" (more than one has it)" if matches else "")
            + ": ask an administrator to add it to your account"
        )
    account = matches[0]
    token, session = sessions.create(account.username, _now())
    return token, session, account


def session_principal(
    records: RecordsStore, sessions: SessionStore, token: str
) -> tuple[Principal, Session] | None:
    """Who a session token is, as their account is now (a role or classes changed since the
    login count at once); None for an unknown or ended session or a disabled account."""
    session = sessions.get(token)
    if session is None:
        return None
    account = records.get_account(session.username)
    if account is None or account.disabled:
        return None
    return account.principal(), session
