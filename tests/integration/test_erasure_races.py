"""Erasure sticks: work asked for before it, still queued or running on a real worker, cannot
bring the student back; erasing again removes whatever is left; every job that saw the student
loses its photos. Real Redis, a real Celery worker, real photos, SQLite and local files."""

from __future__ import annotations

import datetime as dt
import io
import json
import sqlite3
import time
from pathlib import Path

import numpy as np

from attendance.domain.keys import enrollment_marker_key, segment_key, upload_key
from attendance.stores.gallery import encode_segment
from tests import redis_db
from tests.consent import CONSENT_FORM
from tests.integration.test_privacy import traces

# Long ids: a short one could turn up by chance in a JPEG's bytes.
ANN = "race-ann-7c1"
NEW = "race-new-9d2"
CLASS = "race-room"


def files(paths):
    return [(io.BytesIO(Path(p).read_bytes()), Path(p).name) for p in paths]


def submit(stack, url, data) -> str:
    resp = stack.client.post(url, data=data, content_type="multipart/form-data")
    assert resp.status_code == 202, resp.get_json()
    return resp.get_json()["job_id"]


def enroll(stack, faces_dir, student_id, name="Angelina Jolie", photos=("img2.jpg", "img4.jpg")):
    job = stack.wait_for_job(
        submit(
            stack,
            "/api/v1/students",
            {
                "student_id": student_id,
                "name": name,
                "class_id": CLASS,
                "photos": files([faces_dir / p for p in photos]),
                **CONSENT_FORM,
            },
        )
    )
    assert job["state"] == "succeeded", job
    return job


def wait_until_running(stack, job_id: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = stack.client.get(f"/api/v1/jobs/{job_id}").get_json()
        if job["state"] == "running" and job["progress"]["done"] >= 1:
            return
        assert job["state"] in ("queued", "running"), job  # not over before the erasure
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not start in {timeout}s")


def table_rows_naming(stack, needle: str) -> list:
    db = sqlite3.connect(stack.settings.records_url.removeprefix("sqlite:///"))
    found = []
    for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
        if table in ("audit", "erasures", "sqlite_sequence"):
            continue  # who erased them, and the tombstone: the id and when, kept on purpose
        found += [
            (table, row) for row in db.execute(f"SELECT * FROM {table}") if needle in repr(row)
        ]
    db.close()
    return found


def test_work_asked_for_before_an_erasure_cannot_bring_the_student_back(
    stack, faces_dir, celeb_dir
):
    first = enroll(stack, faces_dir, ANN)
    val = sorted((celeb_dir / "val").glob("*/*.jpg"))
    # A job long enough to erase the student while it runs: it loaded the roster (with Ann)
    # at its start and marks attendance at its end. Ann is in couple.jpg.
    photos = [faces_dir / "couple.jpg"] + (val * 2)[:45]
    recognition = submit(
        stack,
        "/api/v1/recognitions",
        {"class_id": CLASS, "date": "2026-11-20", "photos": files(photos)},
    )
    # Queued behind it on the only worker: more photos for Ann, and a new student.
    more = submit(
        stack,
        f"/api/v1/students/{ANN}/photos",
        {"photos": files([faces_dir / "img5.jpg", faces_dir / "img6.jpg"])},
    )
    fresh = submit(
        stack,
        "/api/v1/students",
        {
            "student_id": NEW,
            "name": "Angelina New",
            "class_id": CLASS,
            "photos": files([faces_dir / "img5.jpg"]),
            **CONSENT_FORM,
        },
    )
    wait_until_running(stack, recognition)

    resp = stack.client.delete(f"/api/v1/students/{ANN}?attendance=true")
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["embeddings_removed"] == first["result"]["accepted_photos"]
    # Known by the enrollment asked for them, although it has not run yet.
    assert stack.client.delete(f"/api/v1/students/{NEW}").status_code == 200
    erased = dt.datetime.now(dt.UTC)

    seen = stack.wait_for_job(recognition)
    added = stack.wait_for_job(more)
    assert seen["state"] == "succeeded", seen
    # The race did happen: the job finished after both erasures.
    assert dt.datetime.fromisoformat(seen["updated_at"]) > erased
    assert ANN not in seen["result"]["present"]
    assert all(
        face["student_id"] != ANN for photo in seen["result"]["photos"] for face in photo["faces"]
    )
    assert added["state"] == "failed" and added["error"]["code"] == "student_erased", added
    created = stack.wait_for_job(fresh)
    assert created["state"] == "failed" and created["error"]["code"] == "student_erased", created
    assert stack.client.get(f"/api/v1/students/{NEW}").status_code == 404
    assert traces(stack.root / "store", NEW) == [] and table_rows_naming(stack, NEW) == []

    # Nothing of Ann came back: no record, no embedding, no photo, no student.
    assert stack.client.get(f"/api/v1/students/{ANN}").status_code == 404
    csv = stack.client.get(f"/api/v1/attendance?class_id={CLASS}&format=csv")
    assert ANN not in csv.get_data(as_text=True)
    assert traces(stack.root / "store", ANN) == []
    assert table_rows_naming(stack, ANN) == []
    # Job results in Redis name students by id only.
    jobs = redis_db.client(stack.settings.redis_url)
    for job_id in (first["job_id"], recognition, more):
        assert b"Angelina" not in jobs.get(f"attendance:job:{job_id}")

    # Erasing again is not an error: it answers with what was left (nothing).
    again = stack.client.delete(f"/api/v1/students/{ANN}?attendance=true")
    assert again.status_code == 200
    assert {k: v for k, v in again.get_json().items() if k.endswith("_removed")} == {
        "embeddings_removed": 0,
        "photos_removed": 0,
        "attendance_removed": 0,
    }
    assert stack.client.delete("/api/v1/students/never-enrolled-x9").status_code == 404

    # A new enrollment asked for after the erasure is allowed.
    back = enroll(stack, faces_dir, ANN)
    assert (
        stack.client.get(f"/api/v1/students/{ANN}").get_json()["embeddings"]
        == back["result"]["accepted_photos"]
    )
    assert stack.client.delete(f"/api/v1/students/{ANN}").status_code == 200


def test_erasure_removes_what_a_failed_enrollment_left_and_every_job_that_saw_them(
    stack, faces_dir
):
    sid = "left-over-b3f"
    blobs_root = stack.root / "store"
    from attendance.stores.blob import open_blob_store

    blobs = open_blob_store(stack.settings.blob_store_url)
    # What an enrollment that failed midway leaves: its marker, its uploads and the gallery
    # segment it wrote before the records store refused the pointer.
    job_id = "f" * 32
    blobs.put(enrollment_marker_key(sid, job_id), b"")
    blobs.put(upload_key(job_id, 0, "jpg"), (faces_dir / "img2.jpg").read_bytes())
    vector = np.ones((1, 128), dtype=np.float32)
    blobs.put(segment_key(job_id), encode_segment(vector, [sid]))
    assert traces(blobs_root, sid)

    resp = stack.client.delete(f"/api/v1/students/{sid}")
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["embeddings_removed"] == 1
    assert traces(blobs_root, sid) == []
    assert not blobs.exists(upload_key(job_id, 0, "jpg"))

    # Two recognitions that both found the student: both lose their class and annotated
    # photos (the student's name is drawn on them), not only the one on the attendance row.
    enroll(stack, faces_dir, "seen-twice-d41")
    jobs = [
        stack.wait_for_job(
            submit(
                stack,
                "/api/v1/recognitions",
                {"class_id": CLASS, "date": "2026-11-21", "photos": files([faces_dir / name])},
            )
        )
        for name in ("couple.jpg", "img5.jpg")
    ]
    for job in jobs:
        assert job["result"]["present"] == ["seen-twice-d41"], job
        assert blobs.list(f"annotated/{job['job_id']}/")
    resp = stack.client.delete("/api/v1/students/seen-twice-d41?attendance=true")
    assert resp.status_code == 200 and resp.get_json()["attendance_removed"] == 1
    for job in jobs:
        assert blobs.list(f"annotated/{job['job_id']}/") == []
        assert blobs.list(f"uploads/{job['job_id']}/") == []


def test_a_stored_result_names_no_one_but_the_api_shows_current_names(stack, faces_dir):
    sid = "named-c22"
    enroll(stack, faces_dir, sid, name="Angelina Example")
    job = stack.wait_for_job(
        submit(
            stack,
            "/api/v1/recognitions",
            {"class_id": CLASS, "date": "2026-11-22", "photos": files([faces_dir / "img5.jpg"])},
        )
    )
    [face] = job["result"]["photos"][0]["faces"]
    assert (face["student_id"], face["name"]) == (sid, "Angelina Example")
    stored = json.loads(
        redis_db.client(stack.settings.redis_url).get(f"attendance:job:{job['job_id']}")
    )
    assert stored["result"]["photos"][0]["faces"][0]["name"] is None
    renamed = stack.client.patch(f"/api/v1/students/{sid}", json={"name": "A. Example"})
    assert renamed.status_code == 200 and renamed.get_json()["name"] == "A. Example"
    again = stack.client.get(f"/api/v1/jobs/{job['job_id']}").get_json()
    assert again["result"]["photos"][0]["faces"][0]["name"] == "A. Example"
    stack.client.delete(f"/api/v1/students/{sid}?attendance=true")


def test_two_enrollments_racing_for_one_id_do_not_merge_two_people(stack, faces_dir, celeb_dir):
    sid = "twice-e55"
    ben = sorted((celeb_dir / "train" / "ben_afflek").glob("*.jpg"))[:2]
    # Both are accepted (the id is free when each is asked for); the worker runs them in turn.
    jolie = submit(
        stack,
        "/api/v1/students",
        {
            "student_id": sid,
            "name": "Angelina Jolie",
            "class_id": CLASS,
            "photos": files([faces_dir / "img2.jpg"]),
            **CONSENT_FORM,
        },
    )
    other = submit(
        stack,
        "/api/v1/students",
        {
            "student_id": sid,
            "name": "Ben Affleck",
            "class_id": CLASS,
            "photos": files(ben),
            **CONSENT_FORM,
        },
    )
    first, second = stack.wait_for_job(jolie), stack.wait_for_job(other)
    assert first["state"] == "succeeded", first
    assert second["state"] == "failed" and second["error"]["code"] == "student_exists", second
    student = stack.client.get(f"/api/v1/students/{sid}").get_json()
    assert (student["name"], student["embeddings"]) == ("Angelina Jolie", 1)
    assert stack.client.delete(f"/api/v1/students/{sid}").status_code == 200


def test_flower_shows_the_job_id_of_a_task_and_never_a_name(stack, faces_dir):
    """Flower keeps every task it has seen in memory, where no erasure can reach: what it is
    shown must name no one."""
    import subprocess
    import sys
    import urllib.request

    from tests.conftest import stop_process
    from tests.emulators import free_port

    port = free_port()
    env = {**stack.env, "FLOWER_UNAUTHENTICATED_API": "true"}
    flower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "attendance.worker.celery_app",
            "flower",
            "--address=127.0.0.1",
            f"--port={port}",
        ],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        stdout=open(stack.root / "flower.log", "ab"),
        stderr=subprocess.STDOUT,
    )
    try:

        def tasks() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/tasks", timeout=5) as r:
                return r.read().decode()

        deadline = time.monotonic() + 60
        while True:
            try:
                tasks()
                break
            except OSError:
                assert time.monotonic() < deadline, (stack.root / "flower.log").read_text()
                time.sleep(0.5)
        job = enroll(stack, faces_dir, "flower-f07", name="Zebedee Quartermaine")
        deadline = time.monotonic() + 30
        while job["job_id"] not in (seen := tasks()):
            assert time.monotonic() < deadline, seen
            time.sleep(0.5)
        assert "Zebedee" not in seen and "Quartermaine" not in seen
    finally:
        stop_process(flower)
    stack.client.delete("/api/v1/students/flower-f07")
