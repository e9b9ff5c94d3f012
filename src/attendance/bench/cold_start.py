"""Figure 9: a worker's cold start to its first result; loading a gallery of up to 100k embeddings.

Cold start: a new Celery worker process, started as Stack.start_worker starts them, while the
stack's own workers stop consuming the job queue (and consume it again afterwards). Timed from
the process's start: until it answers a Celery ping, until its pool process has loaded the face
pipeline (FacePipeline.load: the worker publishes its device in Redis once it has), then one real
single-face photo through the API until its result is stored, then a second one (warm). The
pieces of FacePipeline.load are timed apart in a fresh process of their own, with the worker's
settings: the worker logs no timings.

Gallery: galleries of 1k to 100k synthetic embeddings (enrollment_commit's bulk commit, one
segment; and, up to 10k, one segment per student as enrollments write them) on the embedded
stores (files + SQLite), each loaded by a GalleryCache in a fresh process (no snapshot cached),
then refreshed again with nothing changed. The files were just written, so they are read from
the page cache, as on a worker restarted on a running machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from attendance.bench.common import REPO, Context, Result, median, proc_rss_kb, say

NAME = "cold_start"
TITLE = "Worker cold start to first result; loading a 100k-embedding gallery"
GOAL = (
    "worker start to first result < 30 s, first job < 2x a warm one; a cold gallery loads "
    ">= 100k embeddings/s (100k in < 1 s), as one segment and as one per student"
)
START_GOAL_S = 30.0
FIRST_JOB_GOAL = 2.0
LOAD_GOAL_PER_S = 100_000
# What each worker publishes about itself in Redis (src/attendance/worker/info.py): its device
# is set once its pool process has loaded the face pipeline.
WORKER_INFO_PREFIX = "attendance:worker:"
POLL = 0.05
GALLERY_SIZES = (1_000, 10_000, 100_000)  # embeddings
QUICK_GALLERY_SIZES = (1_000, 10_000)
# Building one segment per student costs a commit each (fsync'd files + SQLite), so this layout
# stops at sizes the suite can afford to build.
PER_ENROLLMENT_SIZES = (1_000, 10_000)
QUICK_PER_ENROLLMENT_SIZES = (500,)
WARM_REFRESHES = 20


# --------------------------------------------------------------------------------------------
# What runs in a fresh process


def startup_pieces() -> dict:
    """FacePipeline.load's steps, one by one, in this (fresh) process: seconds each, and the
    FaceNet engine."""
    times: dict[str, float] = {}

    def step(name, fn):
        t0 = time.perf_counter()
        out = fn()
        times[name] = time.perf_counter() - t0
        return out

    from attendance.config.settings import get_settings

    settings = get_settings()
    os.environ["DEEPFACE_HOME"] = str(settings.deepface_home.resolve())
    step("import_face_code", lambda: __import__("attendance.face.detect"))
    from attendance.domain.matching import warm_up as warm_up_matching
    from attendance.face.detect import FaceDetector
    from attendance.face.embed import FaceNetEmbedder
    from attendance.face.engines import resolve_engine
    from attendance.stores import open_stores

    # TensorFlow is imported only where it may see a GPU (attendance.face.engines).
    engine = step("choose_engine", lambda: resolve_engine(settings.embed_engine))
    if engine == "tensorflow":
        step("import_tensorflow", lambda: __import__("tensorflow"))
    if engine in ("openvino", "onnx"):
        step("import_engine", lambda: __import__(engine if engine == "openvino" else "onnxruntime"))
    step("open_stores", lambda: open_stores(settings))
    embedder = step(
        "facenet_load",
        lambda: FaceNetEmbedder(
            settings.weights_path, settings.embed_batch_size, engine, settings.embed_precision
        ),
    )
    step("facenet_warm_up", embedder.warm_up)
    step("matching_warm_up", warm_up_matching)
    detector = step("detector_load", lambda: FaceDetector.from_settings(settings))
    step("detector_warm_up", detector.warm_up)
    return {"engine": engine, **{k: round(v, 3) for k, v in times.items()}}


def load_gallery(folder: str, pipeline: str) -> dict:
    """A cold GalleryCache loading the gallery in ``folder``, in this (fresh) process; then
    refreshes with nothing changed."""
    from attendance.bench.enrollment_commit import open_gallery
    from attendance.stores.gallery import GalleryCache

    repo = open_gallery(Path(folder))
    cache = GalleryCache(repo, pipeline)
    rss0, _ = proc_rss_kb(os.getpid())
    t0 = time.perf_counter()
    cache.refresh()
    cold = time.perf_counter() - t0
    rss1, _ = proc_rss_kb(os.getpid())
    warm = []
    for _ in range(WARM_REFRESHES):
        t0 = time.perf_counter()
        cache.refresh()
        warm.append(time.perf_counter() - t0)
    return {
        "embeddings": int(cache.embeddings.shape[0]),
        "cold_load_s": cold,
        "warm_refresh_s": median(warm),
        "array_bytes": int(cache.embeddings.nbytes + cache.codes.nbytes),
        "rss_delta_bytes": (rss1 - rss0) * 1024,
    }


def start_fresh_process(fn: str, *args, env: dict | None = None) -> subprocess.Popen:
    """``fn(*args)`` of this module, started in a new Python process (see collect())."""
    code = (
        "import json, sys; from attendance.bench import cold_start; "
        f"print(json.dumps(cold_start.{fn}(*json.loads(sys.argv[1]))))"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, json.dumps(args)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def collect(proc: subprocess.Popen) -> dict:
    """What the function run by start_fresh_process() returned."""
    try:
        out, err = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"a benchmark process failed:\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])


def in_fresh_process(fn: str, *args, env: dict | None = None) -> dict:
    return collect(start_fresh_process(fn, *args, env=env))


# --------------------------------------------------------------------------------------------
# Cold start of a worker


def _celery(stack):
    from attendance.config.settings import Settings
    from attendance.dispatch import make_celery, task_queue

    app = make_celery(Settings(REDIS_URL=stack.redis_url))
    return app, task_queue(app)


def _consumers_of(app, stack, queue: str) -> list[str]:
    """The stack's workers (by name) consuming ``queue`` now."""
    host = socket.gethostname()
    names = [n for n in stack.procs if n != "web" and stack.procs[n].poll() is None]
    found = app.control.inspect(destination=[f"{n}@{host}" for n in names], timeout=10)
    active = found.active_queues() or {}
    return [n for n in names if any(q["name"] == queue for q in active.get(f"{n}@{host}", []))]


def _cancel(app, names: list[str], queue: str) -> None:
    host = socket.gethostname()
    for name in names:
        reply = app.control.cancel_consumer(
            queue, destination=[f"{name}@{host}"], reply=True, timeout=10
        )
        if not reply:
            raise RuntimeError(f"worker {name} did not answer cancel_consumer")


def _stop(stack, name: str) -> None:
    proc = stack.procs.pop(name, None)
    if proc is None:
        return
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def cold_worker(stack, app, queue: str, name: str, photo: tuple[str, bytes]) -> dict:
    """Start a worker on ``queue`` (no other consumes it), wait until it is ready, then send it
    two single-face photos: epoch-second timestamps and the two jobs."""
    import redis

    from attendance.bench.common import finished_at

    client = redis.Redis.from_url(stack.redis_url)
    hostname = f"{name}@{socket.gethostname()}"
    client.delete(WORKER_INFO_PREFIX + hostname)
    started = time.time()
    proc = stack.start_worker(name, queue)
    pinged = ready = None
    deadline = time.monotonic() + 300
    while ready is None or pinged is None:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"worker {name} did not get ready; log:\n{stack.log_tail(name)}")
        if pinged is None and app.control.ping(destination=[hostname], timeout=0.25):
            pinged = time.time()
        device = client.hget(WORKER_INFO_PREFIX + hostname, "device")
        if ready is None and device is not None and json.loads(device) is not None:
            ready = time.time()
        time.sleep(POLL)
    client.close()
    first = stack.recognise("celebs", [photo], date="2026-11-27")
    second = stack.recognise("celebs", [photo], date="2026-11-27")
    child = stack.worker_child_pid(name)
    rss_kb = proc_rss_kb(child)[0] if child is not None else 0
    return {
        "started": started,
        "pinged": pinged,
        "ready": ready,
        "first_result": finished_at(first),
        "first": first,
        "second": second,
        "rss_kb": rss_kb,
    }


def measure_cold_start(ctx: Context) -> dict:
    from attendance.bench.data import val_photos

    stack = ctx.stack()
    app, queue = _celery(stack)
    path = val_photos()[0]
    photo = (path.name, path.read_bytes())
    stack.recognise("celebs", [photo], date="2026-11-27")  # the web's first request, not timed
    repeats = 1 if ctx.quick else 3
    consumers = _consumers_of(app, stack, queue)
    runs = []
    # Quick mode checks the path only: its one timing of the steps overlaps the cold worker,
    # which keeps the smoke run short.
    overlapped = start_fresh_process("startup_pieces", env=stack.env) if ctx.quick else None
    try:
        try:
            _cancel(app, consumers, queue)
            for r in range(repeats):
                name = f"cold{r + 1}"
                try:
                    runs.append(cold_worker(stack, app, queue, name, photo))
                finally:
                    _stop(stack, name)
                say(
                    f"  {NAME}: worker {r + 1}: ready after "
                    f"{runs[-1]['ready'] - runs[-1]['started']:.1f} s, first result after "
                    f"{runs[-1]['first_result'] - runs[-1]['started']:.1f} s"
                )
        finally:
            for name in consumers:
                stack.add_consumer(name, queue)
        if overlapped is not None:
            pieces = [collect(overlapped)]
        else:
            pieces = [in_fresh_process("startup_pieces", env=stack.env) for _ in range(repeats)]
    finally:
        if overlapped is not None and overlapped.poll() is None:
            overlapped.kill()
            overlapped.communicate()
    return {"runs": runs, "pieces": pieces, "consumers_paused": consumers}


# --------------------------------------------------------------------------------------------
# Loading a gallery


def _stored_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in (folder / "store").rglob("*") if p.is_file())


def per_enrollment_gallery(folder: Path, embeddings: int, rng: np.random.Generator):
    """A gallery of one segment per student, PER_STUDENT embeddings each, as enrollments
    write it."""
    from attendance.bench.enrollment_commit import PER_STUDENT, commit, open_gallery

    repo = open_gallery(folder)
    t0 = time.perf_counter()
    for i in range(embeddings // PER_STUDENT):
        vectors = rng.standard_normal((PER_STUDENT, 128), dtype=np.float32)
        commit(repo, vectors, [f"s{i:07d}"] * PER_STUDENT, f"enroll-{i}")
    return repo, time.perf_counter() - t0


def measure_gallery(ctx: Context) -> dict:
    from attendance.bench.enrollment_commit import PER_STUDENT, PIPELINE, bulk_gallery

    repeats = 1 if ctx.quick else 3
    rng = np.random.default_rng(9)
    root = Path(tempfile.mkdtemp(prefix="bench-cold-gallery-"))

    def bulk(folder: Path, size: int, rng: np.random.Generator):
        return bulk_gallery(folder, size // PER_STUDENT, rng)

    layouts = {
        "bulk": (QUICK_GALLERY_SIZES if ctx.quick else GALLERY_SIZES, bulk),
        "per_enrollment": (
            QUICK_PER_ENROLLMENT_SIZES if ctx.quick else PER_ENROLLMENT_SIZES,
            per_enrollment_gallery,
        ),
    }
    out: dict[str, dict] = {}
    try:
        for layout, (sizes, build) in layouts.items():
            out[layout] = {}
            for size in sizes:
                folder = root / f"{layout}-{size}"
                _, built = build(folder, size, rng)
                loads = [
                    in_fresh_process("load_gallery", str(folder), PIPELINE) for _ in range(repeats)
                ]
                assert all(load["embeddings"] == size for load in loads), loads
                row = {
                    "build_s": round(built, 2),
                    "cold_load_ms": round(median(x["cold_load_s"] for x in loads) * 1000, 2),
                    "warm_refresh_ms": round(median(x["warm_refresh_s"] for x in loads) * 1000, 3),
                    "stored_bytes": _stored_bytes(folder),
                    "records_bytes": (folder / "db.sqlite").stat().st_size,
                    "array_mb": round(loads[0]["array_bytes"] / 2**20, 2),
                    "rss_delta_mb": round(median(x["rss_delta_bytes"] for x in loads) / 2**20, 1),
                    "loads_ms": [round(x["cold_load_s"] * 1000, 1) for x in loads],
                }
                out[layout][str(size)] = row
                say(
                    f"  {NAME}: {layout} gallery of {size:,} embeddings: cold load "
                    f"{row['cold_load_ms']} ms, warm refresh {row['warm_refresh_ms']} ms, "
                    f"{row['stored_bytes'] / 2**20:.1f} MB stored, {row['array_mb']} MB arrays, "
                    f"RSS +{row['rss_delta_mb']} MB"
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return out


# --------------------------------------------------------------------------------------------


def run(ctx: Context) -> Result:
    result = Result(NAME, TITLE, GOAL)
    cold = measure_cold_start(ctx)
    runs = cold["runs"]

    def med(fn):
        return round(median(fn(r) for r in runs), 2)

    result.show("worker_start_to_ping_s", med(lambda r: r["pinged"] - r["started"]), "s")
    result.show("worker_start_to_ready_s", med(lambda r: r["ready"] - r["started"]), "s")
    result.show("ready_to_first_result_s", med(lambda r: r["first_result"] - r["ready"]), "s")
    result.show(
        "worker_start_to_first_result_s", med(lambda r: r["first_result"] - r["started"]), "s"
    )
    first_s = median(r["first"]["_client"]["latency"] for r in runs)
    warm_s = median(r["second"]["_client"]["latency"] for r in runs)
    result.show("first_job_s", round(first_s, 3), "s (upload to result stored)")
    result.show("warm_job_s", round(warm_s, 3), "s (the second job)")
    result.show(
        "first_job_worker_ms",
        round(median(r["first"]["result"]["timings"]["total"] for r in runs), 1),
        "ms",
    )
    result.show(
        "warm_job_worker_ms",
        round(median(r["second"]["result"]["timings"]["total"] for r in runs), 1),
        "ms",
    )
    result.show("worker_rss_mb", round(median(r["rss_kb"] for r in runs) / 1024, 1), "MB")
    pieces = cold["pieces"]
    steps = [k for k in pieces[0] if k != "engine"]
    load_s = {k: round(median(p[k] for p in pieces), 3) for k in steps}
    for key, value in load_s.items():
        result.show(f"load_{key}_s", value, "s (fresh process)")
    say(f"  {NAME}: FaceNet on {pieces[0]['engine']}")
    result.details["cold_start"] = {
        "runs": [
            {
                "to_ping_s": round(r["pinged"] - r["started"], 2),
                "to_ready_s": round(r["ready"] - r["started"], 2),
                "to_first_result_s": round(r["first_result"] - r["started"], 2),
                "first_job_s": round(r["first"]["_client"]["latency"], 3),
                "warm_job_s": round(r["second"]["_client"]["latency"], 3),
                "first_job_worker_timings_ms": r["first"]["result"]["timings"],
                "warm_job_worker_timings_ms": r["second"]["result"]["timings"],
            }
            for r in runs
        ],
        "load_steps_s": load_s,
        "engine": pieces[0]["engine"],
        "consumers_paused": cold["consumers_paused"],
    }

    gallery = measure_gallery(ctx)
    result.details["gallery"] = gallery
    for size, row in gallery["bulk"].items():
        result.show(f"gallery_cold_load_ms_{size}", row["cold_load_ms"], "ms (one segment)")
    for size, row in gallery["per_enrollment"].items():
        result.show(
            f"gallery_cold_load_ms_{size}_per_enrollment",
            row["cold_load_ms"],
            "ms (one segment per student)",
        )
    largest = max(gallery["bulk"], key=int)
    big = gallery["bulk"][largest]
    result.show(f"gallery_stored_mb_{largest}", round(big["stored_bytes"] / 2**20, 2), "MB")
    result.show(f"gallery_array_mb_{largest}", big["array_mb"], "MB (numpy nbytes)")
    result.show(f"gallery_rss_delta_mb_{largest}", big["rss_delta_mb"], "MB")
    result.show(f"gallery_warm_refresh_ms_{largest}", big["warm_refresh_ms"], "ms (nothing new)")
    rates = {
        layout: int(size) / (rows[size]["cold_load_ms"] / 1000)
        for layout, rows in gallery.items()
        for size in [max(rows, key=int)]
    }
    for layout, rate in rates.items():
        result.show(f"gallery_load_embeddings_per_s_{layout}", round(rate), "embeddings/s")
    result.met = (
        median(r["first_result"] - r["started"] for r in runs) < START_GOAL_S
        and first_s < FIRST_JOB_GOAL * warm_s
        and all(rate >= LOAD_GOAL_PER_S for rate in rates.values())
    )
    result.notes.append(
        "2 shared cores: the cold start competes with whatever else runs; figures are noisy"
    )
    return result
