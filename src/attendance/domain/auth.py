"""API tokens: who may call the API, with which role, for which classes.

Tokens are stored only as SHA-256 hashes (a token is 32 random bytes, so a plain hash is as
good as a slow one) and compared in constant time.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import logging
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

log = logging.getLogger(__name__)


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
    """The tokens of ``inline`` (fixed) and of the tokens file, read again whenever the file
    changes: a token created or revoked (attendance-tokens) counts from the next request."""

    def __init__(self, entries: list[TokenEntry], path: Path | None = None):
        self._inline = list(entries)
        self._path = path
        self._seen: tuple[int, int, int] | None = None
        self._lock = threading.Lock()
        self._entries = self._hashed(self._inline)
        self._refresh()

    @classmethod
    def load(cls, inline_json: str | None, path: Path | None) -> TokenRegistry:
        return cls(_ENTRIES.validate_json(inline_json) if inline_json else [], path)

    @staticmethod
    def _hashed(entries: list[TokenEntry]) -> list[tuple[bytes, TokenEntry]]:
        return [(bytes.fromhex(e.sha256), e) for e in entries]

    def _refresh(self) -> None:
        if self._path is None:
            return
        try:
            st = self._path.stat()
            seen: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            seen = None
        if seen == self._seen:
            return
        with self._lock:
            try:
                from_file = _ENTRIES.validate_json(self._path.read_bytes()) if seen else []
            except (OSError, ValueError) as exc:
                # Closed, not open: a file that cannot be read admits none of its tokens (a
                # revoked one must never come back), until it is put right.
                log.error(
                    "the tokens file %s cannot be used, so none of its tokens: %s", self._path, exc
                )
                from_file = []
            self._entries = self._hashed(self._inline + from_file)
            self._seen = seen

    def __len__(self) -> int:
        self._refresh()
        return len(self._entries)

    def authenticate(self, token: str) -> Principal | None:
        self._refresh()
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


def _read_entries(path: Path) -> list[TokenEntry]:
    return _ENTRIES.validate_json(path.read_bytes()) if path.is_file() else []


def _write_entries(path: Path, entries: list[TokenEntry]) -> None:
    """Replace the file at once (a reader sees the old list or the new one), owner-only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([e.model_dump() for e in entries], indent=2))
    tmp.chmod(0o600)
    tmp.replace(path)


def add_token(path: Path, name: str, role: str, classes: list[str] | None = None) -> str:
    """Create a token, store its hash in the tokens file, and return the token (shown once)."""
    entries = _read_entries(path)
    if any(e.name == name for e in entries):
        raise ValueError(f"a token named {name!r} exists already")
    token = new_token()
    entries.append(TokenEntry(name=name, role=role, sha256=hash_token(token), classes=classes))
    _write_entries(path, entries)
    return token


def revoke_token(path: Path, name: str) -> None:
    """Remove the token named ``name`` from the tokens file."""
    entries = _read_entries(path)
    kept = [e for e in entries if e.name != name]
    if len(kept) == len(entries):
        raise ValueError(f"no token named {name!r} in {path}")
    _write_entries(path, kept)


def token_names(path: Path) -> list[TokenEntry]:
    return _read_entries(path)
