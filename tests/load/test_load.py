"""A bounded load test on loopback: real gunicorn (2 workers), one real Celery worker, real
Redis and local stores, and several concurrent clients over HTTP.

One student is enrolled first; then a fixed number of recognition jobs (1-2 photos each, spread
over a few dates) are sent by CLIENTS threads, each polling its own jobs until they finish. It
stops by itself: a fixed amount of work and a total deadline. Asserted: no 5xx on any request,
every accepted job (202) reaches `succeeded`, and each (class, date) holds exactly the expected
attendance records, once each. Printed (pytest -s): jobs/s and p50/p95 job latency, submit to
succeeded as the client saw it and as the job's own timestamps say.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests import redis_db, tokens
from tests.conftest import REPO, make_stack, stop_process
from tests.consent import CONSENT_FORM
from tests.emulators import free_port

pytestmark = [
    pytest.mark.redis,
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.model,
    pytest.mark.timeout(400),
]

# A Redis database no other suite uses (see tests/conftest.py and the other modules).
DB = 6
CLASS_ID = "load-room"
JOBS = 24
CLIENTS = 4
DATES = [dt.date(2026, 11, 2) + dt.timedelta(days=i) for i in range(6)]
# Photos of Angelina Jolie: two to enroll her, others (alone or with a stranger) to recognise.
ENROLL_PHOTOS = ["img2.jpg", "img4.jpg"]
RECOGNITION_PHOTOS = [
    ["couple.jpg"],
    ["img5.jpg"],
    ["img6.jpg", "couple.jpg"],
    ["img5.jpg", "img6.jpg"],
]
# Wall-clock budgets (seconds): the stack coming up (gunicorn, FaceNet loading in the worker,
# the enrollment) and the load itself. The whole test stops once they are spent.
STARTUP_DEADLINE = 120
LOAD_DEADLINE = 90
POLL_INTERVAL = 0.25
HTTP_TIMEOUT = 30


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


@dataclass
class Job:
    index: int
    date: dt.date
    photos: list[str]
    job_id: str | None = None
    submitted: float = 0.0
    finished: float | None = None
    view: dict | None = None


@dataclass
class Tally:
    """Every HTTP answer any client got, by method, route and status."""

    statuses: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, method: str, route: str, resp: requests.Response) -> None:
        with self.lock:
            self.statuses[(method, route, resp.status_code)] += 1
            if resp.status_code >= 500:
                self.errors.append(f"{method} {route} -> {resp.status_code}: {resp.text[:300]}")


class Api:
    def __init__(self, base: str, tally: Tally):
        self.base = base
        self.tally = tally
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {tokens.ADMIN}"

    def get(self, path: str, route: str) -> requests.Response:
        resp = self.session.get(self.base + path, timeout=HTTP_TIMEOUT)
        self.tally.record("GET", route, resp)
        return resp

    def post(self, path: str, data: dict, files: list, route: str) -> requests.Response:
        resp = self.session.post(self.base + path, data=data, files=files, timeout=HTTP_TIMEOUT)
        self.tally.record("POST", route, resp)
        return resp


def _files(faces_dir: Path, names: list[str]) -> list:
    return [("photos", (n, (faces_dir / n).read_bytes(), "image/jpeg")) for n in names]


def _wait_job(api: Api, job_id: str, deadline: float) -> dict:
    while time.monotonic() < deadline:
        resp = api.get(f"/api/v1/jobs/{job_id}", "/api/v1/jobs/{job_id}")
        assert resp.status_code == 200, resp.text
        view = resp.json()
        if view["state"] in ("succeeded", "failed"):
            return view
        time.sleep(POLL_INTERVAL)
    raise AssertionError(f"job {job_id} did not finish in time")


@pytest.fixture(scope="module")
def load_stack(tmp_path_factory):
    """One real worker and the API under gunicorn (2 workers) on a free loopback port."""
    tmp = tmp_path_factory.mktemp("load")
    stack = make_stack(tmp, DB)
    stack.worker = stack.start_worker()
    port = free_port()
    env = {
        **stack.env,
        "ATTENDANCE_API_TOKENS": tokens.TOKENS_JSON,
        "ATTENDANCE_API_TOKENS_FILE": str(tmp / "no-tokens-file.json"),
    }
    gunicorn_log = tmp / "gunicorn.log"
    with open(gunicorn_log, "ab") as log:
        web = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
                "--access-logfile",
                "-",
                "attendance.web.app:create_app()",
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        # gunicorn's master accepts connections before its workers have imported the app, so
        # the first probes may be refused or time out.
        deadline = time.monotonic() + 60
        while True:
            assert web.poll() is None, gunicorn_log.read_text(errors="replace")[-3000:]
            try:
                if requests.get(base + "/healthz", timeout=5).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):
                pass
            assert time.monotonic() < deadline, (
                "gunicorn did not answer /healthz in 60 s:\n"
                + gunicorn_log.read_text(errors="replace")[-3000:]
            )
            time.sleep(0.2)
        yield stack, base, gunicorn_log
    finally:
        stop_process(web)
        stop_process(stack.worker)
        redis_db.fresh_db(DB)


def test_load_recognitions(load_stack, faces_dir):
    stack, base, gunicorn_log = load_stack
    tally = Tally()
    setup = Api(base, tally)
    started = time.monotonic()
    startup_deadline = started + STARTUP_DEADLINE

    # Enroll first; this also waits for the worker to have loaded FaceNet.
    resp = setup.post(
        "/api/v1/students",
        {"student_id": "jolie", "name": "Angelina Jolie", "class_id": CLASS_ID, **CONSENT_FORM},
        _files(faces_dir, ENROLL_PHOTOS),
        "/api/v1/students",
    )
    assert resp.status_code == 202, resp.text
    enrolled = _wait_job(setup, resp.json()["job_id"], startup_deadline)
    assert enrolled["state"] == "succeeded", enrolled
    assert enrolled["result"]["accepted_photos"] == len(ENROLL_PHOTOS), enrolled
    ready_after = time.monotonic() - started

    jobs = [
        Job(i, DATES[i % len(DATES)], RECOGNITION_PHOTOS[i % len(RECOGNITION_PHOTOS)])
        for i in range(JOBS)
    ]
    load_start = time.monotonic()
    deadline = load_start + LOAD_DEADLINE
    failures: list[str] = []

    def client(mine: list[Job]) -> None:
        api = Api(base, tally)
        try:
            for job in mine:  # a teacher uploading a few classes' photos, one after the other
                job.submitted = time.monotonic()
                resp = api.post(
                    "/api/v1/recognitions",
                    {"class_id": CLASS_ID, "date": job.date.isoformat()},
                    _files(faces_dir, job.photos),
                    "/api/v1/recognitions",
                )
                if resp.status_code != 202:
                    failures.append(f"job {job.index}: {resp.status_code} {resp.text[:300]}")
                    continue
                job.job_id = resp.json()["job_id"]
            pending = [j for j in mine if j.job_id]
            while pending and time.monotonic() < deadline:
                for job in list(pending):
                    resp = api.get(f"/api/v1/jobs/{job.job_id}", "/api/v1/jobs/{job_id}")
                    if resp.status_code != 200:
                        failures.append(f"job {job.index}: poll {resp.status_code}")
                        pending.remove(job)
                        continue
                    view = resp.json()
                    if view["state"] in ("succeeded", "failed"):
                        job.finished, job.view = time.monotonic(), view
                        pending.remove(job)
                time.sleep(POLL_INTERVAL)
        except Exception as exc:  # reported below, with the others
            failures.append(f"client error: {type(exc).__name__}: {exc}")

    threads = [
        threading.Thread(target=client, args=(jobs[k::CLIENTS],), name=f"client-{k}")
        for k in range(CLIENTS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(1.0, deadline - time.monotonic() + HTTP_TIMEOUT))
    assert not any(t.is_alive() for t in threads), "a client did not stop by the deadline"
    elapsed = max((j.finished or 0) for j in jobs) - load_start

    # --- the figures (pytest -s shows them)
    done = [j for j in jobs if j.view and j.view["state"] == "succeeded"]
    seen = [j.finished - j.submitted for j in done]
    server = [
        (
            dt.datetime.fromisoformat(j.view["updated_at"])
            - dt.datetime.fromisoformat(j.view["created_at"])
        ).total_seconds()
        for j in done
    ]
    photos = sum(len(j.photos) for j in done)
    print(
        f"\nload: {len(done)}/{JOBS} recognition jobs ({photos} photos) from {CLIENTS} clients "
        f"in {elapsed:.1f} s: {len(done) / elapsed:.2f} jobs/s, {photos / elapsed:.2f} photos/s "
        f"(stack ready, student enrolled, after {ready_after:.1f} s)"
    )
    if seen:
        print(
            f"  latency submit->succeeded as clients saw it: p50 {percentile(seen, 0.5):.2f} s, "
            f"p95 {percentile(seen, 0.95):.2f} s, max {max(seen):.2f} s"
        )
        print(
            f"  latency created_at->updated_at (job state): p50 {percentile(server, 0.5):.2f} s,"
            f" p95 {percentile(server, 0.95):.2f} s"
        )
    print(
        "  answers: "
        + ", ".join(f"{m} {r} {s}: {n}" for (m, r, s), n in sorted(tally.statuses.items()))
    )

    # --- the assertions
    assert tally.errors == [], "\n".join(tally.errors)
    assert failures == [], "\n".join(failures)
    not_done = [(j.index, j.job_id, j.view and j.view["state"]) for j in jobs if j not in done]
    assert not_done == [], f"jobs not succeeded by the deadline: {not_done}"
    for job in done:
        result = job.view["result"]
        assert (result["class_id"], result["date"]) == (CLASS_ID, job.date.isoformat()), result
        assert result["present"] == ["jolie"], (job.photos, result)
        assert job.view["progress"] == {"done": len(job.photos), "total": len(job.photos)}

    # Exactly one record per (class, date) for the one student, however many jobs saw her.
    jobs_by_date: dict[str, set[str]] = {}
    for job in done:
        jobs_by_date.setdefault(job.date.isoformat(), set()).add(job.job_id)
    for day, job_ids in sorted(jobs_by_date.items()):
        resp = setup.get(f"/api/v1/attendance?class_id={CLASS_ID}&date={day}", "/api/v1/attendance")
        assert resp.status_code == 200, resp.text
        records = resp.json()["records"]
        assert [(r["class_id"], r["date"], r["student_id"]) for r in records] == [
            (CLASS_ID, day, "jolie")
        ], records
        assert records[0].get("job_id") in job_ids | {None}, records
    every = setup.get(f"/api/v1/attendance?class_id={CLASS_ID}", "/api/v1/attendance")
    keys = [(r["class_id"], r["date"], r["student_id"]) for r in every.json()["records"]]
    assert sorted(keys) == sorted({(CLASS_ID, d.isoformat(), "jolie") for d in DATES}), keys
    assert tally.errors == []

    gunicorn_output = gunicorn_log.read_text(errors="replace")
    assert tokens.ADMIN not in gunicorn_output
    assert "[ERROR]" not in gunicorn_output and "Traceback" not in gunicorn_output, gunicorn_output[
        -3000:
    ]
