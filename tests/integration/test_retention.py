"""Uploaded and annotated photos are deleted after the retention period by Celery beat."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from tests import redis_db
from tests.conftest import REPO, make_stack

DB = 8


def test_beat_purges_expired_photos_and_keeps_the_rest(tmp_path):
    stack = make_stack(tmp_path, DB)
    store = tmp_path / "store"
    old = time.time() - 31 * 24 * 3600
    files = {}
    for key in (
        "uploads/aaa/000.jpg",
        "annotated/aaa/000.jpg",
        "uploads/bbb/000.jpg",
        "students/ann/aaa-000.jpg",
    ):
        path = store / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"photo")
        files[key] = path
    for key in ("uploads/aaa/000.jpg", "annotated/aaa/000.jpg", "students/ann/aaa-000.jpg"):
        os.utime(files[key], (old, old))

    env = {
        **stack.env,
        "ATTENDANCE_RETENTION_DAYS": "30",
        "ATTENDANCE_RETENTION_SWEEP_SECONDS": "1",
    }
    stack.env = env
    worker = stack.start_worker("ret")
    beat = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "attendance.worker.celery_app",
            "beat",
            "--schedule",
            str(tmp_path / "beat-schedule"),
            "--loglevel",
            "INFO",
        ],
        cwd=REPO,
        env=env,
        stdout=open(tmp_path / "beat.log", "wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and files["uploads/aaa/000.jpg"].exists():
            time.sleep(0.5)
        assert not files["uploads/aaa/000.jpg"].exists(), (tmp_path / "beat.log").read_text()
        assert not files["annotated/aaa/000.jpg"].exists()
        assert files["uploads/bbb/000.jpg"].exists()  # not expired yet
        assert files["students/ann/aaa-000.jpg"].exists()  # kept until the student is erased
    finally:
        for proc in (beat, worker):
            proc.terminate()
            proc.wait(timeout=30)
        redis_db.fresh_db(DB)
