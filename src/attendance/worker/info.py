"""What a worker is: its queues (cpu/gpu), the device its TensorFlow uses and its stores.

* logged once when a pool process has loaded FaceNet;
* published in Redis (``attendance:worker:<nodename>``, a hash) so /readyz can show it for the
  workers that answer its ping, and tell when no worker consumes the queue jobs are sent to;
* answered by the ``attendance.worker_info`` task, e.g.
  ``celery -A attendance.worker.celery_app call attendance.worker_info --queue gpu``.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import socket
from dataclasses import dataclass, field

import redis
from celery.signals import celeryd_after_setup, worker_process_init, worker_shutdown

from attendance.config.settings import get_settings
from attendance.dispatch import WORKER_INFO_TASK
from attendance.worker.celery_app import app
from attendance.worker.runtime import get_pipeline

log = logging.getLogger(__name__)

INFO_PREFIX = "attendance:worker:"
INFO_TTL_SECONDS = 24 * 3600


@dataclass
class _Node:
    name: str
    queues: list[str] = field(default_factory=list)


# Set in the main worker process before the pool forks, so every pool process knows them.
_node = _Node(f"celery@{socket.gethostname()}")


def _redis() -> redis.Redis:
    return redis.Redis.from_url(
        get_settings().redis_url, socket_connect_timeout=3, socket_timeout=3
    )


def _publish(fields: dict) -> None:
    key = INFO_PREFIX + _node.name
    try:
        client = _redis()
        try:
            pipe = client.pipeline()
            pipe.hset(key, mapping={k: json.dumps(v) for k, v in fields.items()})
            pipe.expire(key, INFO_TTL_SECONDS)
            pipe.execute()
        finally:
            client.close()
    except redis.RedisError:
        log.warning("could not publish worker info to Redis", exc_info=True)


def _scheme(url: str) -> str:
    return url.split(":", 1)[0]


def describe() -> dict:
    """This pool process: node, queues, TensorFlow's device, the stores' kinds."""
    settings = get_settings()
    info = {
        "hostname": _node.name,
        "queues": _node.queues,
        "pid": os.getpid(),
        "blob_store": _scheme(settings.blob_store_url),
        "records": _scheme(settings.records_url),
    }
    pipe = get_pipeline()
    from attendance.face.engines import visible_gpus

    info.update(
        device=pipe.embedder.device,
        engine=pipe.embedder.engine,
        gpus=visible_gpus(),
        tensorflow=importlib.metadata.version("tensorflow"),
    )
    return info


@celeryd_after_setup.connect
def _remember_node(sender, instance, **_kwargs) -> None:
    _node.name = str(sender)
    _node.queues = sorted(instance.app.amqp.queues.consume_from)
    _publish({"queues": _node.queues, "device": None})


@worker_process_init.connect
def _report_device(**_kwargs) -> None:
    try:
        info = describe()
    except Exception:  # the pipeline did not load; attendance.worker.runtime logged why
        return
    log.info(
        "worker %s: FaceNet on %s with %s (GPUs: %s), queues %s",
        info["hostname"],
        info["device"],
        info["engine"],
        ", ".join(info["gpus"]) or "none",
        ", ".join(info["queues"]),
    )
    _publish({"device": info["device"], "engine": info["engine"], "gpus": info["gpus"]})


@worker_shutdown.connect
def _forget_node(**_kwargs) -> None:
    try:
        client = _redis()
        try:
            client.delete(INFO_PREFIX + _node.name)
        finally:
            client.close()
    except redis.RedisError:
        pass


@app.task(name=WORKER_INFO_TASK)
def worker_info() -> dict:
    return describe()
