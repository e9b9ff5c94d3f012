"""Figure 7: throughput under load, one and two worker processes; worker memory over 200 jobs.

A bounded load test on loopback only: the API (gunicorn) on 127.0.0.1, a fixed number of
recognition jobs sent by a few concurrent clients, each uploading one photo and polling its job
until done; then it stops. Latency ends when the result is stored (the job's updated_at).
Photos alternate between a single-face val photo and the 7-person
selfie. Run with one worker process, then with a second one consuming the same queue.

Memory: the worker process's RSS (its Celery prefork child, where FaceNet runs) after 20 and
after 200 single-photo jobs, and its peak (VmHWM).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from attendance.bench.common import Context, Result, finished_at, percentile, proc_rss_kb, say

NAME = "load"
TITLE = "Throughput under load; worker memory"
GOAL = "report jobs/s and p50/p95 with 1 and 2 workers; RSS flat from 20 to 200 jobs"
# Clients poll every 50 ms, as a real client would (latency is read from the job's updated_at,
# so the interval does not add to it).
POLL = 0.05


def _client(stack):
    import requests

    local = threading.local()

    def run(photo: tuple[str, bytes]) -> float:
        if not hasattr(local, "session"):
            local.session = requests.Session()
            local.session.headers.update(stack.headers)
        s = local.session
        t0 = time.time()
        resp = s.post(
            stack.base + "/api/v1/recognitions",
            data={"class_id": "celebs", "date": "2026-11-26"},
            files=[("photos", (photo[0], photo[1], "image/jpeg"))],
            timeout=120,
        )
        if resp.status_code != 202:
            raise RuntimeError(f"{resp.status_code} {resp.text[:300]}")
        job_id = resp.json()["job_id"]
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            job = s.get(f"{stack.base}/api/v1/jobs/{job_id}", timeout=30).json()
            if job["state"] == "succeeded":
                return finished_at(job) - t0  # when the result was stored
            if job["state"] == "failed":
                raise RuntimeError(f"job failed: {job['error']}")
            time.sleep(POLL)
        raise RuntimeError(f"job {job_id} did not finish")

    return run


def load_test(stack, photos, jobs: int, clients: int) -> dict:
    run = _client(stack)
    work = [photos[i % len(photos)] for i in range(jobs)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = list(pool.map(run, work))
    wall = time.perf_counter() - t0
    return {
        "jobs": jobs,
        "clients": clients,
        "wall_s": round(wall, 2),
        "jobs_per_s": round(jobs / wall, 2),
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
        "p95_ms": round(percentile(latencies, 0.95) * 1000, 1),
    }


def run(ctx: Context) -> Result:
    from attendance.bench.data import FACES_DIR, val_photos

    result = Result(NAME, TITLE, GOAL)
    stack = ctx.stack()
    vals = [(p.name, p.read_bytes()) for p in val_photos()]
    selfie = ("selfie-many-people.jpg", (FACES_DIR / "selfie-many-people.jpg").read_bytes())
    mixed = [x for pair in zip(vals, [selfie] * len(vals)) for x in pair]
    jobs, clients = (4, 2) if ctx.quick else (40, 4)

    # Memory first, on the one worker: 200 single-photo jobs, RSS after 20 and after 200.
    pid = stack.worker_child_pid("w1")

    def rss_kb() -> tuple[int, int]:
        return (0, 0) if pid is None else proc_rss_kb(pid)  # no worker process: nothing to read

    first, total = (2, 6) if ctx.quick else (20, 200)
    run_one = _client(stack)
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(run_one, [vals[i % len(vals)] for i in range(first)]))
        rss_first, _ = rss_kb()
        list(pool.map(run_one, [vals[i % len(vals)] for i in range(first, total)]))
    rss_last, peak = rss_kb()
    result.show(f"worker_rss_mb_after_{first}_jobs", round(rss_first / 1024, 1), "MB")
    result.show(f"worker_rss_mb_after_{total}_jobs", round(rss_last / 1024, 1), "MB")
    result.show("worker_peak_rss_mb", round(peak / 1024, 1), "MB")
    growth = (rss_last - rss_first) / rss_first
    result.show("rss_growth", round(growth, 3), f"(from job {first} to job {total})")

    one = load_test(stack, mixed, jobs, clients)
    say(f"  {NAME}: 1 worker: {one}")
    stack.add_consumer("w2")
    time.sleep(1.0)
    two = load_test(stack, mixed, jobs, clients)
    say(f"  {NAME}: 2 workers: {two}")
    result.details["one_worker"], result.details["two_workers"] = one, two
    result.show("jobs_per_s_1_worker", one["jobs_per_s"], "jobs/s")
    result.show("jobs_per_s_2_workers", two["jobs_per_s"], "jobs/s")
    result.show("p50_ms_1_worker", one["p50_ms"], "ms")
    result.show("p95_ms_1_worker", one["p95_ms"], "ms")
    result.show("p50_ms_2_workers", two["p50_ms"], "ms")
    result.show("p95_ms_2_workers", two["p95_ms"], "ms")
    result.met = growth < 0.05
    result.notes.append(f"memory is 'flat' when RSS grows < 5% from job {first} to job {total}")
    return result
