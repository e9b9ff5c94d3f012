"""What every benchmark shares: timing, machine facts, the models in this process, the stack.

Timings on a shared 2-core machine are noisy, so every figure is a ratio against a baseline
measured in the same run, interleaved (baseline, candidate, baseline, candidate, ...) and
summarised by the median of the repeats.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# The benchmarks run from the checkout (`make bench`), where var/ and tests/data are.
REPO = Path.cwd()
DEEPFACE_HOME = Path(os.environ.get("ATTENDANCE_DEEPFACE_HOME", REPO / "var" / "deepface"))
BENCH_REDIS_DB = 12
# The benchmarks enroll adults of public face data sets; the API requires consent on record
# for every enrollment, so each one brings it.
CONSENT = {
    "consent_given_by": "benchmark data set",
    "consent_relationship": "self",
    "consent_given_on": "2026-01-01",
    "minor": "false",
}


def setup_env() -> None:
    """Before TensorFlow or DeepFace is imported: quiet logs, the provisioned weights."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["DEEPFACE_HOME"] = str(DEEPFACE_HOME.resolve())


def median(values) -> float:
    values = list(values)
    return float(statistics.median(values)) if values else float("nan")


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def interleave(variants: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Run each variant once per round, in the same order, for ``repeats`` rounds: seconds."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            seconds, _ = timed(fn)
            times[name].append(seconds)
    return times


def percentile(values, q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return float(values[lo] + (values[hi] - values[lo]) * (k - lo))


def say(message: str) -> None:
    print(message, flush=True)


# --------------------------------------------------------------------------------------------
# Machine facts


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


# The instruction sets that decide how fast the matrix products of FaceNet and CenterFace run,
# hence how the ratios of one machine compare with another's (docs/performance.md).
MATRIX_ISA = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_bf16",
    "avx512_vnni",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


def cpu_identity() -> dict:
    """The CPU's vendor, family and model numbers (a VM may not name the model) and which of
    MATRIX_ISA it has."""
    fields: dict[str, str] = {}
    for line in _read("/proc/cpuinfo").splitlines():
        if not line.strip():
            break  # the first processor is enough
        if ":" in line:
            key, value = line.split(":", 1)
            fields[key.strip()] = value.strip()
    flags = set(fields.get("flags", "").split())
    return {
        "cpu_id": (
            f"{fields.get('vendor_id', '?')} family {fields.get('cpu family', '?')} "
            f"model {fields.get('model', '?')}"
        ),
        "cpu_isa": [f for f in MATRIX_ISA if f in flags],
    }


def machine_info() -> dict:
    from importlib import metadata

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo").splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    mem_kb = next(
        (
            int(line.split()[1])
            for line in _read("/proc/meminfo").splitlines()
            if line.startswith("MemTotal:")
        ),
        0,
    )
    versions = {"python": platform.python_version()}
    for dist in (
        "tensorflow",
        "openvino",
        "onnxruntime",
        "nncf",
        "tf-keras",
        "keras",
        "deepface",
        "numpy",
        "opencv-contrib-python-headless",
        "mtcnn",
        "celery",
        "redis",
        "Flask",
        "gunicorn",
        "matplotlib",
    ):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except Exception:
        commit = ""
    return {
        "cpu_model": cpu,
        **cpu_identity(),
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "os": platform.platform(),
        "versions": versions,
        "git_commit": commit,
        "load_average_at_start": list(os.getloadavg()),
    }


# --------------------------------------------------------------------------------------------
# Results


@dataclass
class Result:
    """One figure of the suite: the headline numbers, the goal, and the details behind them."""

    name: str
    title: str
    goal: str
    met: bool | None = None
    figures: dict[str, float | int | None] = field(default_factory=dict)
    details: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def show(self, key: str, value, unit: str = "") -> None:
        self.figures[key] = value
        shown = f"{value:.3g}" if isinstance(value, float) else value
        say(f"  {self.name}: {key} = {shown}{(' ' + unit) if unit else ''}")

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "title": self.title,
            "goal": self.goal,
            "met": self.met,
            "figures": self.figures,
            "details": self.details,
            "notes": self.notes,
            "seconds": round(self.seconds, 1),
        }


# --------------------------------------------------------------------------------------------
# What the in-process benchmarks load once


class Models:
    def __init__(self):
        self._embedder = None
        self._detectors: dict[str, object] = {}
        self._deepface = None

    @property
    def settings(self):
        from attendance.config.settings import Settings

        return Settings(deepface_home=DEEPFACE_HOME)

    @property
    def embedder(self):
        if self._embedder is None:
            setup_env()
            from attendance.face.embed import FaceNetEmbedder

            settings = self.settings
            self._embedder = FaceNetEmbedder(
                settings.weights_path,
                settings.embed_batch_size,
                settings.embed_engine,
                settings.embed_precision,
            )
            self._embedder.warm_up()
        return self._embedder

    def detector(self, backend: str = "opencv"):
        if backend not in self._detectors:
            setup_env()
            from attendance.face.detect import FaceDetector

            self._detectors[backend] = FaceDetector.from_settings(self.settings, backend)
        return self._detectors[backend]

    @property
    def deepface(self):
        """DeepFace with Facenet built (the first represent() call builds it; not timed)."""
        if self._deepface is None:
            setup_env()
            import numpy as np
            from deepface import DeepFace

            DeepFace.represent(
                img_path=np.zeros((160, 160, 3), np.uint8),
                model_name="Facenet",
                detector_backend="skip",
                enforce_detection=False,
            )
            self._deepface = DeepFace
        return self._deepface


# --------------------------------------------------------------------------------------------
# The whole stack: gunicorn serving the API over HTTP on 127.0.0.1, Celery workers, Redis


# How often a benchmark client polls a job. Each poll is an HTTP request the web answers on the
# same 2 cores as the worker: polling every 5 ms took a visible share of the CPU.
POLL_SECONDS = 0.02


def finished_at(job: dict) -> float:
    """When the job reached its final state (epoch seconds), from its updated_at."""
    import datetime as dt

    return dt.datetime.fromisoformat(job["updated_at"].replace("Z", "+00:00")).timestamp()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_url(db: int) -> str:
    url = os.environ.get("ATTENDANCE_TEST_REDIS_URL") or os.environ.get(
        "REDIS_URL", "redis://127.0.0.1:6379/0"
    )
    base = url.rsplit("/", 1)[0] if url.count("/") > 2 else url
    return f"{base}/{db}"


def proc_rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in kB."""
    rss = hwm = 0
    for line in _read(f"/proc/{pid}/status").splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    return rss, hwm


def child_pids(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        out += [int(p) for p in _read(str(task / "children")).split()]
    return out


class Stack:
    """A private stack for the benchmarks; every process it starts, it stops."""

    def __init__(self, redis_db: int = BENCH_REDIS_DB, quick: bool = False, gpu: bool = False):
        """``gpu``: face work goes to the "gpu" queue, whose workers run FaceNet on TensorFlow."""
        import redis
        import requests

        self.root = Path(tempfile.mkdtemp(prefix="attendance-bench-"))
        self.redis_url = redis_url(redis_db)
        redis.Redis.from_url(self.redis_url).flushdb()
        # An admin API token that lives as long as this stack.
        token = secrets.token_urlsafe(32)
        tokens = json.dumps(
            [
                {
                    "name": "bench",
                    "role": "admin",
                    "sha256": hashlib.sha256(token.encode()).hexdigest(),
                }
            ]
        )
        self.env = {
            **os.environ,
            "ATTENDANCE_API_TOKENS": tokens,
            "ATTENDANCE_API_TOKENS_FILE": str(self.root / "no-tokens-file.json"),
            "REDIS_URL": self.redis_url,
            "ATTENDANCE_BLOB_STORE_URL": f"file://{self.root}/store",
            "ATTENDANCE_RECORDS_URL": f"sqlite:///{self.root}/attendance.db",
            "ATTENDANCE_DEEPFACE_HOME": str(DEEPFACE_HOME.resolve()),
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
        if gpu:
            self.env.update(ATTENDANCE_GPU_WORKERS="true", ATTENDANCE_EMBED_ENGINE="tensorflow")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.http = requests.Session()
        # A poll that meets a reset connection (seen once on a busy machine) asks again; an
        # upload is not retried.
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        self.http.mount(
            "http://",
            HTTPAdapter(
                max_retries=Retry(
                    total=3, backoff_factor=0.1, allowed_methods={"GET"}, status_forcelist=()
                )
            ),
        )
        self.headers = {"Authorization": f"Bearer {token}"}
        self.http.headers.update(self.headers)
        self.procs: dict[str, subprocess.Popen] = {}
        self.quick = quick
        self._start(
            "web",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                "2",
                "--timeout",
                "300",
                # Not the default $HOME/.gunicorn/gunicorn.ctl, which every gunicorn of the
                # user on this machine would share.
                "--no-control-socket",
                "attendance.web.app:create_app()",
            ],
        )
        self._wait_http()

    def _start(self, name: str, cmd: list[str]) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "ab")
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def _wait_http(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.http.get(self.base + "/healthz", timeout=2).status_code == 200:
                    return
            except Exception:
                pass
            if self.procs["web"].poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"the web did not start; log:\n{self.log_tail('web')}")

    def log_tail(self, name: str, chars: int = 3000) -> str:
        try:
            return (self.root / f"{name}.log").read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def start_worker(self, name: str, queue: str = "cpu") -> subprocess.Popen:
        """One worker process (Celery prefork, concurrency 1) consuming ``queue``."""
        return self._start(
            name,
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "attendance.worker.celery_app",
                "worker",
                "-Q",
                queue,
                "--concurrency",
                "1",
                "--pool",
                "prefork",
                "-n",
                f"{name}@%h",
                "--loglevel",
                "WARNING",
                "--without-gossip",
                "--without-mingle",
            ],
        )

    def add_consumer(self, name: str, queue: str = "cpu") -> None:
        """Make a running worker consume ``queue`` too (Celery remote control)."""
        from attendance.config.settings import Settings
        from attendance.dispatch import make_celery

        app = make_celery(Settings(REDIS_URL=self.redis_url))
        hostname = f"{name}@{socket.gethostname()}"
        reply = app.control.add_consumer(queue, destination=[hostname], reply=True, timeout=10)
        if not reply:
            raise RuntimeError(f"worker {hostname} did not answer add_consumer")

    def worker_child_pid(self, name: str) -> int | None:
        proc = self.procs.get(name)
        if proc is None:
            return None
        kids = child_pids(proc.pid)
        return kids[0] if kids else None

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
        self.procs.clear()
        try:
            import redis

            redis.Redis.from_url(self.redis_url).flushdb()
        except Exception:
            pass
        subprocess.run(["rm", "-rf", str(self.root)], check=False)

    # --- the API --------------------------------------------------------------------------

    def submit(self, path: str, data: dict, photos: list[tuple[str, bytes]]) -> str:
        files = [("photos", (name, body, "image/jpeg")) for name, body in photos]
        resp = self.http.post(self.base + path, data=data, files=files, timeout=120)
        if resp.status_code != 202:
            raise RuntimeError(f"POST {path}: {resp.status_code} {resp.text[:500]}")
        return resp.json()["job_id"]

    def wait(self, job_id: str, timeout: float = 600, poll: float = POLL_SECONDS) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.http.get(f"{self.base}/api/v1/jobs/{job_id}", timeout=30).json()
            if job["state"] in ("succeeded", "failed"):
                return job
            time.sleep(poll)
        raise RuntimeError(
            f"job {job_id} did not finish in {timeout}s; worker log:\n"
            + "\n".join(self.log_tail(n) for n in self.procs if n != "web")
        )

    def run_job(self, path: str, data: dict, photos: list[tuple[str, bytes]]) -> dict:
        """Upload, then poll until done: the job and its client-side timings (seconds).

        ``latency`` ends when the result was stored (the job's updated_at, same clock), so the
        polling interval neither adds to it nor, polling slowly, takes CPU from the worker;
        ``seen`` ends when this client saw it.
        """
        wall0, t0 = time.time(), time.perf_counter()
        job_id = self.submit(path, data, photos)
        t1 = time.perf_counter()
        job = self.wait(job_id)
        t2 = time.perf_counter()
        if job["state"] != "succeeded":
            raise RuntimeError(f"job failed: {json.dumps(job)[:1000]}")
        job["_client"] = {"upload": t1 - t0, "latency": finished_at(job) - wall0, "seen": t2 - t0}
        return job

    def enroll(self, student_id: str, name: str, class_id: str, paths: list[Path]) -> None:
        # At most 20 photos a request: the first enrolls, the next ones add photos.
        for start in range(0, len(paths), 20):
            chunk = [(p.name, p.read_bytes()) for p in paths[start : start + 20]]
            if start == 0:
                self.run_job(
                    "/api/v1/students",
                    {"student_id": student_id, "name": name, "class_id": class_id, **CONSENT},
                    chunk,
                )
            else:
                self.run_job(f"/api/v1/students/{student_id}/photos", {}, chunk)

    def recognise(
        self, class_id: str, photos: list[tuple[str, bytes]], date: str = "2026-11-25"
    ) -> dict:
        return self.run_job("/api/v1/recognitions", {"class_id": class_id, "date": date}, photos)


class Context:
    """Shared by the benchmarks of one run: the options, the models, the stack (started once)."""

    def __init__(
        self,
        quick: bool = False,
        redis_db: int = BENCH_REDIS_DB,
        gpu: bool = False,
        models: Models | None = None,
    ):
        self.quick = quick
        self.redis_db = redis_db
        self.gpu = gpu
        self.models = models or Models()
        self._stack: Stack | None = None
        self.enrolled_class: str | None = None

    @property
    def repeats(self) -> int:
        return 1 if self.quick else 5

    @property
    def path_repeats(self) -> int:
        """Repeats of the whole-path comparisons, the noisiest figures."""
        return 1 if self.quick else 5

    def stack(self) -> Stack:
        """The stack with one worker ready (and a second one idle on a spare queue), the
        5 Celebrity Faces gallery enrolled in class "celebs"."""
        if self._stack is None:
            from attendance.bench.data import PEOPLE, gallery_photos

            say("  starting the stack (gunicorn on 127.0.0.1, 2 Celery worker processes)...")
            stack = Stack(self.redis_db, self.quick, self.gpu)
            self._stack = stack
            stack.start_worker("w1", queue="gpu" if self.gpu else "cpu")
            # The second worker loads FaceNet now, in parallel, but takes no job until the load
            # test makes it consume the job queue.
            stack.start_worker("w2", queue="standby")
            photos = gallery_photos()
            for person in PEOPLE:
                paths = photos[person][:2] if self.quick else photos[person]
                stack.enroll(person, person.replace("_", " ").title(), "celebs", paths)
            self.enrolled_class = "celebs"
        return self._stack

    def close(self) -> None:
        if self._stack is not None:
            self._stack.stop()
            self._stack = None
