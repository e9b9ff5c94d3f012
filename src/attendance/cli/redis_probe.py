"""What attendance-redis knows about a Redis URL: its parts, whether that Redis answers (and to
which password), how it persists, and where redis-server is; plus the tool's own messages."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import sys
from typing import NoReturn
from urllib.parse import unquote, urlsplit, urlunsplit

from attendance.cli.env_file import setting

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError:  # pragma: no cover - the stores extra (every role but the frontend) has it
    print(
        "ensure_redis: error: redis-py is missing: run it with the venv's python "
        "(.venv/bin/python, `make venv` installs it)",
        file=sys.stderr,
    )
    sys.exit(1)

DEFAULT_URL = "redis://127.0.0.1:6379/0"

UP, LOADING, AUTH, BAD, DOWN = "up", "loading", "auth", "bad", "down"

MISSING_SERVER = (
    "redis-server is not installed. `make sysdeps` installs it with apt-get "
    "(`make run` and `make test` do that themselves); elsewhere install Redis >= 6 "
    "(e.g. `brew install redis`) or point REDIS_URL at a running Redis."
)


def say(message: str) -> None:
    print(f"ensure_redis: {message}", flush=True)


def warn(message: str) -> None:
    print(f"ensure_redis: {message}", file=sys.stderr, flush=True)


def die(message: str, code: int = 1) -> NoReturn:
    warn(f"error: {message}")
    sys.exit(code)


def configured_url() -> str:
    """``$REDIS_URL``, else ``REDIS_URL`` in ``.env``, else the default local Redis."""
    return setting("REDIS_URL") or DEFAULT_URL


class Target:
    """The parts of a ``redis://``, ``rediss://`` or ``unix://`` URL that matter here."""

    host: str | None
    port: int | None
    socket_path: str | None

    def __init__(self, url: str):
        self.url = url
        parts = urlsplit(url)
        self.scheme = parts.scheme or "redis"
        if self.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"unsupported Redis URL scheme {self.scheme!r} in {self.safe_url}")
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        if self.password is None and self.username and self.scheme != "unix":
            # redis://secret@host/ is the old "password only" form.
            self.password, self.username = self.username, None
        if self.scheme == "unix":
            self.host, self.port, self.socket_path = None, None, parts.path
        else:
            self.host = parts.hostname or "127.0.0.1"
            try:
                self.port = parts.port or 6379
            except ValueError as err:
                raise ValueError(f"bad port in {self.safe_url}") from err
            self.socket_path = None

    @property
    def safe_url(self) -> str:
        parts = urlsplit(self.url)
        if parts.password or parts.username:
            netloc = "***@" + parts.netloc.rpartition("@")[2]
            return urlunsplit(parts._replace(netloc=netloc))
        return self.url

    @property
    def where(self) -> str:
        return self.socket_path if self.socket_path else f"{self.host}:{self.port}"

    def is_local(self) -> bool:
        if self.socket_path:
            return True
        host = (self.host or "").strip("[]")
        if host in ("localhost", "0.0.0.0", "::", socket.gethostname()):
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def client(self, timeout: float = 1.0) -> redis.Redis:
        """A redis-py client for this URL that fails fast (no retries).

        RESP2, so a password goes in with AUTH, which a Redis without one refuses (HELLO 3
        AUTH would be let in), and a Redis that is not the one REDIS_URL means is noticed.
        """
        return redis.Redis.from_url(
            self.url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
            protocol=2,
        )


def _auth_detail(target: Target, err: Exception) -> str:
    """Say in words what an authentication error means for this URL."""
    text = str(err) or type(err).__name__
    lowered = text.lower()
    if target.password is None:
        return (
            f"it asks for a password and REDIS_URL has none ({text}); put it in REDIS_URL "
            f"as redis://:PASSWORD@{target.where}/<db>"
        )
    if "without any password configured" in lowered or "no password is set" in lowered:
        return (
            f"REDIS_URL has a password but the Redis at {target.where} has none ({text}): "
            "is another Redis listening there?"
        )
    return f"it refused the password in REDIS_URL ({text})"


def probe(target: Target, timeout: float = 1.0) -> tuple[str, str]:
    """PING the Redis. Returns (``UP``|``LOADING``|``AUTH``|``BAD``|``DOWN``, detail)."""
    client = target.client(timeout)
    try:
        reply = client.ping()
    # redis-py's AuthenticationError and BusyLoadingError are ConnectionErrors: test them first.
    except redis.AuthenticationError as err:
        return AUTH, _auth_detail(target, err)
    except redis.BusyLoadingError as err:
        return LOADING, str(err) or "LOADING"
    except redis.ResponseError as err:
        if str(err).startswith(("NOAUTH", "WRONGPASS")):
            return AUTH, _auth_detail(target, err)
        return BAD, str(err)
    except (redis.ConnectionError, redis.TimeoutError, OSError) as err:
        return DOWN, str(err) or type(err).__name__
    except redis.RedisError as err:  # a reply that is not Redis's
        return BAD, str(err) or type(err).__name__
    finally:
        client.close()
    return (UP, "PONG") if reply else (BAD, repr(reply))


def persistence(target: Target) -> tuple[bool | None, str]:
    """Ask the Redis how it persists. Returns (durable, what it does).

    durable is True with an append-only file, False without one (RDB snapshots alone lose
    what came after the last one), None when the Redis does not say (CONFIG refused).
    """
    client = target.client(2.0)
    try:
        appendonly = client.config_get("appendonly").get("appendonly") or ""
        save = client.config_get("save").get("save") or ""
        fsync = client.config_get("appendfsync").get("appendfsync") or ""
    except redis.RedisError as err:
        return None, f"it does not say how it persists (CONFIG GET: {err})"
    finally:
        client.close()
    if appendonly == "yes":
        return True, f"it keeps an append-only file (appendfsync {fsync or '?'})"
    if save.strip():
        return False, (
            f'it has no append-only file, only RDB snapshots (save "{save}"): '
            "jobs queued since its last snapshot are lost if it crashes or is killed"
        )
    return False, (
        'it persists nothing (appendonly no, save ""): queued jobs and job state '
        "are lost whenever it restarts"
    )


def find_redis_server() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    for candidate in (
        "/usr/bin/redis-server",
        "/usr/sbin/redis-server",
        "/usr/local/bin/redis-server",
        "/opt/homebrew/bin/redis-server",
    ):
        if os.access(candidate, os.X_OK):
            return candidate
    return None
