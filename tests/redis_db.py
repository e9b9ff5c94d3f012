"""The tests' Redis: the server at ``ATTENDANCE_TEST_REDIS_URL`` (which `make test` points at a
private throw-away redis-server), else ``REDIS_URL``. Each suite takes a database of its own by
number, so queues and job state never cross, and flushes it before use."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis

DEFAULT_URL = "redis://127.0.0.1:6379/15"


def server_url() -> str:
    """The test server's URL without a database (nor options)."""
    url = os.environ.get("ATTENDANCE_TEST_REDIS_URL") or os.environ.get("REDIS_URL", DEFAULT_URL)
    return urlunsplit(urlsplit(url)._replace(path="", query="", fragment=""))


def url_for(db: int) -> str:
    """Database ``db`` of the test server."""
    return f"{server_url()}/{db}"


def client(url: str, **options: Any) -> redis.Redis:
    """A redis-py client for ``url`` (``options`` as for ``redis.Redis.from_url``)."""
    return redis.Redis.from_url(url, **options)


def flush(url: str) -> None:
    """Empty the database ``url`` names."""
    with client(url) as connection:
        connection.flushdb()


def fresh_db(db: int) -> str:
    """Database ``db`` of the test server, emptied; its URL."""
    url = url_for(db)
    flush(url)
    return url
