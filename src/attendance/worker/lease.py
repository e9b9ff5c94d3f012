"""A run of a job's task holds the job's lease, renewed by a thread while the run lasts: the
reconciler knows a job whose lease lapsed has lost its worker."""

from __future__ import annotations

import logging
import threading

import redis

from attendance.stores.jobs import JobStore

log = logging.getLogger(__name__)


class Lease:
    def __init__(self, jobs: JobStore, job_id: str, holder: str, seconds: float):
        self.jobs, self.job_id, self.holder, self.seconds = jobs, job_id, holder, seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"lease-{job_id}", daemon=True)
        self._handed_over = False

    def __enter__(self) -> Lease:
        self._thread.start()
        return self

    def _renew(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                if not self.jobs.renew_lease(self.job_id, self.holder, self.seconds):
                    log.warning("job %s: another run holds its lease now", self.job_id)
            except redis.RedisError as exc:
                log.warning("job %s: could not renew its lease: %s", self.job_id, exc)

    def hand_over(self, seconds: float) -> None:
        """Keep the job leased for its task's retry, due within ``seconds``."""
        self._halt()
        try:
            self._handed_over = self.jobs.hand_over_lease(self.job_id, self.holder, seconds)
        except redis.RedisError as exc:
            log.warning("job %s: could not hand its lease to the retry: %s", self.job_id, exc)

    def _halt(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def __exit__(self, *exc_info) -> None:
        self._halt()
        if self._handed_over:
            return
        try:
            self.jobs.release_lease(self.job_id, self.holder)
        except redis.RedisError as exc:  # it lapses by itself
            log.warning("job %s: could not release its lease: %s", self.job_id, exc)
