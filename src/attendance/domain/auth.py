"""API tokens: who may call the API, with which role, for which classes.

Tokens are stored only as SHA-256 hashes (a token is 32 random bytes, so a plain hash is as
good as a slow one) and compared in constant time.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class Role(enum.IntEnum):
    """Each role may do everything the ones below it may."""

    viewer = 1  # read attendance
    teacher = 2  # take attendance, export it as CSV, read students, the model and jobs
    admin = 3  # enroll, add photos, rename, erase, read the audit log: everything


class TokenEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    role: str = Field(pattern="^(admin|teacher|viewer)$")
    sha256: str = Field(pattern="^[0-9a-f]{64}$")
    # For a teacher: the classes they may see and take attendance for; None means all.
    classes: list[str] | None = None


_ENTRIES = TypeAdapter(list[TokenEntry])


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    classes: frozenset[str] | None

    def may_see_class(self, class_id: str) -> bool:
        return self.classes is None or class_id in self.classes


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


class TokenRegistry:
    def __init__(self, entries: list[TokenEntry]):
        self._entries = [(bytes.fromhex(e.sha256), e) for e in entries]

    @classmethod
    def load(cls, inline_json: str | None, path: Path | None) -> TokenRegistry:
        entries: list[TokenEntry] = []
        if inline_json:
            entries += _ENTRIES.validate_json(inline_json)
        if path is not None and path.is_file():
            entries += _ENTRIES.validate_json(path.read_bytes())
        return cls(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def authenticate(self, token: str) -> Principal | None:
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        found = None
        # Compare against every entry, so the time taken does not say which one matched.
        for stored, entry in self._entries:
            if hmac.compare_digest(stored, digest) and found is None:
                found = entry
        if found is None:
            return None
        classes = frozenset(found.classes) if found.classes is not None else None
        return Principal(found.name, Role[found.role], classes)


def add_token(path: Path, name: str, role: str, classes: list[str] | None = None) -> str:
    """Create a token, store its hash in the tokens file, and return the token (shown once)."""
    entries = _ENTRIES.validate_json(path.read_bytes()) if path.is_file() else []
    if any(e.name == name for e in entries):
        raise ValueError(f"a token named {name!r} exists already")
    token = new_token()
    entries.append(TokenEntry(name=name, role=role, sha256=hash_token(token), classes=classes))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([e.model_dump() for e in entries], indent=2))
    tmp.chmod(0o600)
    tmp.replace(path)
    return token
