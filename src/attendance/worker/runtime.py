"""One face pipeline per worker process, loaded after the fork and kept for its lifetime."""

from __future__ import annotations

import logging
import threading

from celery.signals import worker_process_init

from attendance.config.settings import Settings, get_settings
from attendance.services.pipeline import FacePipeline
from attendance.stores.jobs import JobStore

log = logging.getLogger(__name__)

_pipeline: FacePipeline | None = None
_jobs: JobStore | None = None
_lock = threading.Lock()


def get_jobs() -> tuple[JobStore, Settings]:
    """Job state without the model: a task can report failure even if FaceNet cannot load."""
    global _jobs
    if _jobs is None:
        settings = get_settings()
        _jobs = JobStore.from_url(settings.redis_url, settings.job_ttl_seconds)
    return _jobs, get_settings()


def get_pipeline() -> FacePipeline:
    global _pipeline
    if _pipeline is None:
        with _lock:
            if _pipeline is None:
                _pipeline = FacePipeline.load(get_settings())
    return _pipeline


@worker_process_init.connect
def _preload(**_kwargs) -> None:
    # TensorFlow does not survive a fork, so the model loads in each child, before its first task.
    try:
        get_pipeline()
    except Exception:  # the first task reports it as a clear job error
        log.exception("face pipeline failed to load")
