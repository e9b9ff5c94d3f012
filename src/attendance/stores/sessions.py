"""Login sessions in Redis: a session token (random, shown once) names an account for a while.

Only the token's SHA-256 is kept, as the key; each account's sessions are listed too, so that
disabling the account or setting a new password ends them all. Failed logins are counted per
username over a window, for the login to refuse further tries once too many failed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from dataclasses import dataclass

import redis

_SESSION = "attendance:session:"
_OF = "attendance:sessions-of:"
_FAILURES = "attendance:login-failures:"


@dataclass(frozen=True)
class Session:
    username: str
    expires_at: dt.datetime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class SessionStore:
    def __init__(self, client: redis.Redis, lifetime_seconds: float):
        self.redis = client
        self.lifetime = int(lifetime_seconds)

    def create(self, username: str, now: dt.datetime) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        session = Session(username, now + dt.timedelta(seconds=self.lifetime))
        body = json.dumps({"username": username, "expires_at": session.expires_at.isoformat()})
        digest = _digest(token)
        pipe = self.redis.pipeline()
        pipe.set(_SESSION + digest, body, ex=self.lifetime)
        pipe.sadd(_OF + username, digest)
        pipe.expire(_OF + username, self.lifetime)
        pipe.execute()
        return token, session

    def get(self, token: str) -> Session | None:
        raw = self.redis.get(_SESSION + _digest(token))
        if raw is None:
            return None
        body = json.loads(raw)
        return Session(body["username"], dt.datetime.fromisoformat(body["expires_at"]))

    def end(self, token: str) -> None:
        digest = _digest(token)
        session = self.get(token)
        pipe = self.redis.pipeline()
        pipe.delete(_SESSION + digest)
        if session is not None:
            pipe.srem(_OF + session.username, digest)
        pipe.execute()

    def end_all(self, username: str) -> int:
        digests = [
            d.decode() if isinstance(d, bytes) else d for d in self.redis.smembers(_OF + username)
        ]
        pipe = self.redis.pipeline()
        for digest in digests:
            pipe.delete(_SESSION + digest)
        pipe.delete(_OF + username)
        pipe.execute()
        return len(digests)

    def failed_login(self, username: str, window_seconds: float) -> int:
        """Count a failed login; the failures of the current window."""
        pipe = self.redis.pipeline()
        pipe.incr(_FAILURES + username)
        pipe.expire(_FAILURES + username, int(window_seconds), nx=True)
        return int(pipe.execute()[0])

    def login_failures(self, username: str) -> int:
        return int(self.redis.get(_FAILURES + username) or 0)

    def clear_failures(self, username: str) -> None:
        self.redis.delete(_FAILURES + username)
