"""A gunicorn config (``-c``) for tests/faults/test_lost_jobs.py: each web worker stops as it
submits a job, at the step ``STALL_AT`` names (``remember_task``: its photos stored, before the
copy of its task; ``enqueue``: the copy stored, before the message), and writes its pid and the
job's id to the file ``STALL_MARKER`` names, for the test to kill it there."""

from __future__ import annotations

import os
import time


def _stall(job_id: str) -> None:
    marker = os.environ["STALL_MARKER"]
    with open(marker + ".tmp", "w") as out:
        out.write(f"{os.getpid()} {job_id}")
    os.replace(marker + ".tmp", marker)
    time.sleep(3600)


def post_worker_init(worker) -> None:
    import attendance.web.submission as submission
    from attendance.stores.jobs import JobStore

    if os.environ["STALL_AT"] == "remember_task":
        JobStore.remember_task = lambda self, job_id, task: _stall(job_id)
    else:
        submission.enqueue = lambda app, name, payload, job_id, queue=None: _stall(job_id)
