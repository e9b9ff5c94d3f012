"""People's accounts: a username and a password, a role and (for a teacher) their classes.

Passwords are kept only as Argon2id hashes (attendance.services.accounts hashes them). A login
makes a session (attendance.stores.sessions); a disabled account, or a new password, ends every
session of the account.
"""

from __future__ import annotations

import datetime as dt
import re

from pydantic import ConfigDict, Field, field_validator, model_validator

from attendance.domain.auth import Principal, Role
from attendance.domain.schemas import STUDENT_ID_RE, Strict

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 256
# The roles by name, from the one list of them (attendance.domain.auth.Role), highest first.
ROLES = tuple(role.name for role in sorted(Role, reverse=True))
# Any character a keyboard types, spaces included, but no control characters.
CONTROL_CHARACTERS = r"\x00-\x1f\x7f"
_CONTROL = re.compile(f"[{CONTROL_CHARACTERS}]")


class Account(Strict):
    username: str
    role: str = Field(pattern="^(admin|teacher|viewer)$")
    # The classes the account may see (a teacher's, a viewer's); None: every class.
    classes: list[str] | None = None
    disabled: bool = False
    # Empty: no password (the account logs in through the identity provider only).
    password_hash: str
    # The address a login through the school's identity provider (OpenID Connect) must verify.
    email: str | None = None
    created_at: dt.datetime
    updated_at: dt.datetime

    def principal(self) -> Principal:
        classes = frozenset(self.classes) if self.classes is not None else None
        return Principal(self.username, Role[self.role], classes)

    def public(self) -> dict:
        """What the API shows of an account: never its password's hash."""
        return self.model_dump(mode="json", exclude={"password_hash"})


class AccountView(Strict):
    username: str
    role: str
    classes: list[str] | None
    disabled: bool
    email: str | None = None
    created_at: dt.datetime
    updated_at: dt.datetime


class Request(Strict):
    """A body as sent: JSON types as they are (no 0 for false, no number for a string)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class NewAccount(Request):
    username: str
    # Either or both: a password, or an email to log in with through the identity provider.
    password: str | None = None
    email: str | None = None
    role: str = Field(pattern="^(admin|teacher|viewer)$")
    classes: list[str] | None = None

    @model_validator(mode="after")
    def _some_way_in(self) -> NewAccount:
        if self.password is None and self.email is None:
            raise ValueError(
                "an account needs a password, or an email to log in with through the school's "
                "identity provider"
            )
        return self

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        return check_email(value) if value is not None else None

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        return check_username(value)

    @field_validator("password")
    @classmethod
    def _password(cls, value: str | None) -> str | None:
        return check_password(value) if value is not None else None

    @field_validator("classes")
    @classmethod
    def _classes(cls, value: list[str] | None) -> list[str] | None:
        return check_classes(value)


class AccountChange(Request):
    """What an admin may change; absent fields stay as they are."""

    role: str | None = Field(default=None, pattern="^(admin|teacher|viewer)$")
    classes: list[str] | None = None
    all_classes: bool = False
    disabled: bool | None = None
    password: str | None = None
    # An empty string removes the account's email.
    email: str | None = None

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        return check_email(value) if value else value

    @field_validator("password")
    @classmethod
    def _password(cls, value: str | None) -> str | None:
        return check_password(value) if value is not None else None

    @field_validator("classes")
    @classmethod
    def _classes(cls, value: list[str] | None) -> list[str] | None:
        return check_classes(value)


class Login(Request):
    username: str = Field(max_length=64)
    password: str = Field(max_length=MAX_PASSWORD)


class IdentityLogin(Request):
    """A login through the school's identity provider: the ID token it gave the app."""

    provider: str = Field(max_length=32)
    id_token: str = Field(max_length=16_384)


def check_username(value: str) -> str:
    if not USERNAME_RE.fullmatch(value):
        raise ValueError(
            "a username is 2 to 64 characters: lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def check_password(value: str) -> str:
    if not MIN_PASSWORD <= len(value) <= MAX_PASSWORD:
        raise ValueError(
            f"a password is {MIN_PASSWORD} to {MAX_PASSWORD} characters (a few words make one "
            "easy to remember)"
        )
    if _CONTROL.search(value):
        raise ValueError("a password has no control characters (tabs, line breaks)")
    return value


# Enough to catch a slip (a name typed where the address goes); the identity provider is the
# authority on what an address is.
EMAIL_PATTERN = r"^[^@\s\x00-\x1f\x7f]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z0-9-]{2,63}$"
_EMAIL_RE = re.compile(EMAIL_PATTERN)


def check_email(value: str) -> str:
    value = value.strip().lower()
    if len(value) > 254 or not _EMAIL_RE.fullmatch(value):
        raise ValueError(f"not an email address: {value!r}")
    return value


def check_classes(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    if len(value) > 200:
        raise ValueError("at most 200 classes")
    for class_id in value:
        if not STUDENT_ID_RE.fullmatch(class_id):
            raise ValueError(f"not a class id: {class_id!r}")
    return sorted(set(value))
