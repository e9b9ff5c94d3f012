"""Liveness (the process answers) and readiness (it can do useful work right now).

Readiness writes as well as reads: a store that answers reads but refuses writes (a read-only
database, a full disk) cannot take a job. The blob store writes a small probe file and deletes
it; the records store overwrites one fixed probe row (RecordsStore.probe_write).
"""

from __future__ import annotations

import json
import logging
import sqlite3

import redis
from flask import Blueprint, jsonify
from redis.backoff import NoBackoff
from redis.retry import Retry

from attendance.dispatch import task_queue
from attendance.domain.api_shapes import Health, Readiness
from attendance.domain.errors import AppError
from attendance.stores.records import RecordsStore
from attendance.web.apidoc import Reply, operation
from attendance.web.auth import public
from attendance.web.context import services

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)

WORKER_PING_TIMEOUT = 1.0
REDIS_PING_TIMEOUT = 1.0


@bp.get("/healthz")
@public
@operation("healthz", "The process is up.", replies={200: Reply("Up.", Health)})
def healthz():
    return jsonify(Health(status="ok").model_dump(mode="json"))


def _reason(check: str, exc: Exception) -> str:
    """What is down, for anyone who asks: never the exception's text, which can hold file
    paths, hosts or library internals. The details go to the log."""
    log.warning("readiness check %r failed: %s: %s", check, type(exc).__name__, exc)
    if isinstance(exc, AppError):
        # Written for people (it names the bucket or table and what to do) and already what
        # the API's own 503 answers say at the same moment.
        return exc.message[:300]
    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        return "unreachable"
    if isinstance(exc, sqlite3.Error):
        return "cannot be opened, read or written"
    if isinstance(exc, OSError):
        return "not writable"
    return "failed (the details are in the web's log)"


# What each worker published about itself (src/attendance/worker/info.py).
WORKER_INFO_PREFIX = "attendance:worker:"


def _worker_details(url: str, names: list[str]) -> list[dict]:
    client = redis.Redis.from_url(
        url,
        socket_connect_timeout=REDIS_PING_TIMEOUT,
        socket_timeout=REDIS_PING_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        pipe = client.pipeline()
        for name in names:
            pipe.hgetall(WORKER_INFO_PREFIX + name)
        found = pipe.execute()
    finally:
        client.close()
    details = []
    for name, fields in zip(names, found):
        info = {k.decode(): json.loads(v) for k, v in fields.items()}
        details.append(
            {
                "name": name,
                "queues": info.get("queues"),
                "device": info.get("device"),
                "engine": info.get("engine"),
            }
        )
    return details


def _ping_redis(url: str) -> None:
    # The shared client retries with backoff, which suits requests but would let an unreachable
    # Redis hold a probe for many seconds; the probe gets one short try on its own connection.
    client = redis.Redis.from_url(
        url,
        socket_connect_timeout=REDIS_PING_TIMEOUT,
        socket_timeout=REDIS_PING_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        client.ping()
    finally:
        client.close()


def _read_and_write(records: RecordsStore) -> None:
    records.ping()
    records.probe_write()


@bp.get("/readyz")
@public
@operation(
    "readyz",
    "Redis, the stores and at least one worker answer.",
    replies={200: Reply("Ready.", Readiness), 503: Reply("Not ready; checks say why.", Readiness)},
)
def readyz():
    svc = services()
    checks: dict[str, str] = {}
    for name, ping in (
        ("redis", lambda: _ping_redis(svc.settings.redis_url)),
        ("blob_store", svc.blobs.ping),
        ("records", lambda: _read_and_write(svc.records)),
    ):
        try:
            ping()
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = _reason(name, exc)

    # Celery's broadcast retries its broker connection for a long time; with Redis known to be
    # down, asking the workers would only make this endpoint hang.
    workers: list[dict] = []
    if checks["redis"] != "ok":
        checks["workers"] = "not checked: redis is unavailable"
    else:
        try:
            replies = svc.celery.control.ping(timeout=WORKER_PING_TIMEOUT)
            checks["workers"] = "ok" if replies else "no worker answered the ping"
            names = sorted(name for reply in replies for name in reply)
            workers = _worker_details(svc.settings.redis_url, names) if names else []
        except Exception as exc:
            log.warning("readiness check 'workers' failed: %s: %s", type(exc).__name__, exc)
            checks["workers"] = "the workers could not be asked (the details are in the web's log)"
        # Jobs go to one queue ("cpu" or "gpu", from the settings): someone must consume it.
        queue = task_queue(svc.celery)
        known = [w for w in workers if w["queues"] is not None]
        if known and not any(queue in w["queues"] for w in known):
            consumed = sorted({q for w in known for q in w["queues"]})
            checks["workers"] = (
                f"no worker consumes the {queue!r} queue that jobs are sent to "
                f"(workers consume: {', '.join(consumed)})"
            )

    ready = all(value == "ok" for value in checks.values())
    body = Readiness(status="ready" if ready else "not_ready", checks=checks, workers=workers)
    return jsonify(body.model_dump(mode="json")), 200 if ready else 503
